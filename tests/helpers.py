"""Shared test helpers: simulated hosts, CLI runs, waiting on conditions."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

from supervisor_pd.simulator.host import SimHost, build_sim_host
from supervisor_pd.simulator.profiles import PROFILES

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CONF = REPO / "configs" / "mindie"
DATA = Path(__file__).resolve().parent / "data"


def base_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no SUPERVISOR_PD_*, MindIE or Ascend variables leak in from the caller."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env["SUPERVISOR_PD_STATE_DIR"] = str(tmp_path / "state")
    return env


def sim_host(tmp_path: Path, profile: str = "800i-a2", name: str | None = None) -> SimHost:
    return build_sim_host(PROFILES[profile], tmp_path / "hosts" / (name or profile))


def sim_env(tmp_path: Path, host: SimHost) -> dict[str, str]:
    """Environment that points discovery at `host` without --simulate (so tests can alter it)."""
    return host.environ(base_env(tmp_path))


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor_pd", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links not followed) with its content hash and mode."""
    digest: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            digest[str(path.relative_to(folder))] = f"{hashlib.sha256(data).hexdigest()} {oct(path.stat().st_mode)}"
    return digest


def listener(host: str = "127.0.0.1", start: int = 21000) -> socket.socket:
    """A listening socket on a free port below the ephemeral range (the caller closes it)."""
    for port in range(start, start + 2000):
        sock = socket.socket()
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            continue
        sock.listen()
        return sock
    raise RuntimeError("no free port found for a test listener")
