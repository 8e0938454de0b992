"""The control socket: private from birth, reachable at any path length."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from supervisor_pd import unixsock


def test_a_socket_deeper_than_sun_path_allows(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "api.sock"
    assert len(str(path)) > unixsock.MAX_PATH
    server = unixsock.listen(path)
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        with unixsock.connect(path, 2.0) as peer:
            server.setblocking(True)
            accepted, _ = server.accept()
            with accepted:
                peer.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
    finally:
        server.close()


def test_the_probe_command_imports_nothing_heavy() -> None:
    """An exec probe runs every few seconds: it must not load pydantic, aiohttp or the runtime."""
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "supervisor_pd",
            "probe",
            "liveness",
            "--url",
            "http://127.0.0.1:1",
            "--timeout",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "supervisor_pd.client" in imported
    assert not {
        m for m in imported if m.split(".")[0] in ("pydantic", "aiohttp", "anyio", "orjson", "prometheus_client")
    }
    assert "supervisor_pd.settings" not in imported
