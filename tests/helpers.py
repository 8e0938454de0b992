"""Shared test helpers: simulated hosts, CLI runs, waiting on conditions."""

from __future__ import annotations

import functools
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
NETNS = Path(__file__).resolve().parent / "netns.py"
# Run inside the namespace by the availability check: loopback answers, and it is not ours.
_NETNS_PROBE = """
import os, socket
server = socket.create_server(("127.0.0.1", 0))
socket.create_connection(server.getsockname(), timeout=5).close()
print(os.readlink("/proc/self/ns/net"))
"""


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


@functools.cache
def private_net_unavailable() -> str | None:
    """None if commands can be run in a private network namespace here, else why not. Checked
    once per test process by trying it (tests/netns.py), not guessed from the uid or the kernel."""
    if not sys.platform.startswith("linux"):
        return f"no network namespaces on {sys.platform}"
    try:
        probe = subprocess.run(
            [sys.executable, "-I", "-S", str(NETNS), sys.executable, "-I", "-S", "-c", _NETNS_PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"tests/netns.py could not be run: {exc}"
    if probe.returncode != 0:
        return probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
    if probe.stdout.strip() == os.readlink("/proc/self/ns/net"):
        return "tests/netns.py ran the command in this process's own network namespace"
    return None


def private_net(argv: list[str]) -> list[str]:
    """`argv` run in a private network namespace with its own loopback (tests/netns.py), so the
    fixed ports of the sample configs are free for it even while another stack holds them here.
    Where no namespace can be made, `argv` unchanged: the command then needs those ports free.
    The process cannot be reached over the network from the test: give a command that is dialled
    ports from `tests.simstack.free_base()` instead."""
    if private_net_unavailable() is not None:
        return argv
    return [sys.executable, "-I", "-S", str(NETNS), *argv]


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 60, private: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python -m supervisor_pd ARGS`; `private`: in a private network namespace (see private_net),
    for commands that plan with the sample configs' fixed ports."""
    argv = [sys.executable, "-m", "supervisor_pd", *args]
    return subprocess.run(
        private_net(argv) if private else argv,
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
