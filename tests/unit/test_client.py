"""The operator client: finding the socket, reading replies, printing the status table."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from supervisor_pd import client


def test_the_socket_is_found_the_way_the_supervisor_places_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUPERVISOR_PD_API_SOCKET", "SUPERVISOR_PD_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/op")
    assert client.socket_path() == Path("/home/op/.local/state/supervisor-pd/api.sock")
    monkeypatch.setenv("XDG_STATE_HOME", "/xdg")
    assert client.socket_path() == Path("/xdg/supervisor-pd/api.sock")
    monkeypatch.setenv("supervisor_pd_state_dir", "/state")  # any case, as the settings read it
    assert client.socket_path() == Path("/state/api.sock")
    monkeypatch.setenv("SUPERVISOR_PD_API_SOCKET", "/run/sp.sock")
    assert client.socket_path() == Path("/run/sp.sock")


@pytest.mark.parametrize(
    "url", ["localhost:8080", "https://h:1", "http://h", "http://h:0", "http://h:99999", "http://"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="--url"):
        client.Api(url, 1.0)


def test_urls_that_work() -> None:
    assert client.Api("http://127.0.0.1:8080", 1.0).address == ("127.0.0.1", 8080)
    assert client.Api("http://[::1]:8080/", 1.0).address == ("::1", 8080)


def reply_of(data: bytes) -> tuple[int, bytes]:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(data)
        right.shutdown(socket.SHUT_WR)
        return client._read_reply(left)


def test_replies_with_a_length_or_chunked() -> None:
    assert reply_of(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n") == (200, b"ok\n")
    chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert reply_of(chunked) == (503, b"abcde")
    with pytest.raises(client.ClientError):
        reply_of(b"SSH-2.0-OpenSSH\r\n")


def test_names_are_quoted_into_one_path_segment() -> None:
    assert client._quote("server-1") == "server-1"
    assert client._quote("../x y/é") == "..%2Fx%20y%2F%C3%A9"


def test_status_table() -> None:
    now = 1000.0
    process = {
        "name": "server-1",
        "component": "server",
        "role": "prefill",
        "state": "running",
        "ready": False,
        "since": now - 90,
        "serving": {"state": "loading", "since": now - 192, "seconds": 192.0, "detail": "loading 3m12s"},
        "pid": 42,
        "restarts": 3,
        "restart_causes": {"operator": 1, "crash": 2},
        "last_exit": "exit code 1",
        "ports": {"port": 2000, "management": 2001},
        "devices": [0, 1],
        "cpus": "0-47",
        "health": {"ok": True, "seconds": 0.0012},
    }
    controller = {
        **process,
        "name": "controller",
        "role": None,
        "component": "controller",
        "pid": None,
        "devices": [],
        "cpus": None,
        "health": None,
        "last_exit": None,
        "serving": {"state": "ready", "since": now - 90, "seconds": 90.0, "detail": ""},
        "restarts": 1,
        "restart_causes": {},
        "ports": {"port": 1030},
    }
    data = {
        "phase": "ready",
        "phase_reason": "all good",
        "phase_seconds": 5,
        "plan": {
            "model": "m",
            "device_type": "800i-a2",
            "simulated": None,
            "servers": 1,
            "world_size": 2,
            "p_rate": 1,
            "d_rate": 1,
            "coordinator": {"predict": "10.0.0.1:1025"},
        },
        "processes": [process, controller],
    }
    lines = client.status_table(data, now).splitlines()
    assert lines[0] == "phase: ready for 5s: all good"
    assert "inference: 10.0.0.1:1025" in lines[1]
    assert lines[3].split() == [
        "NAME",
        "ROLE",
        "STATE",
        "FOR",
        "SERVING",
        "PID",
        "RESTARTS",
        "LAST",
        "EXIT",
        "PORTS",
        "NPUS",
        "CPUS",
        "HEALTH",
    ]
    assert lines[4].split() == [
        "server-1",
        "prefill",
        "running",
        "90s",
        "loading",
        "3m12s",
        "42",
        "3",
        "(2",
        "crash,",
        "1",
        "operator)",
        "exit",
        "code",
        "1",
        "2000,2001",
        "0,1",
        "0-47",
        "ok",
        "1.2ms",
    ]
    assert lines[5].split() == [
        "controller",
        "controller",
        "running",
        "90s",
        "ready",
        "-",
        "1",
        "-",
        "1030",
        "-",
        "-",
        "-",
    ]
    assert len(lines) == 6  # no NPU health section from a supervisor that has none

    data["processes"] = [{**process, "state": "unhealthy", "npu_fault": "NPU 3 chip 0: health Alarm"}, controller]
    error = "`npu-smi info` did not finish within 10 s"
    last = {"age_seconds": 2.2, "tool_runs": 17, "tool_errors": [{"tool": "npu-smi", "error": error}]}
    data["npu_health"] = {"enabled": True, "interval_seconds": 15.0, "policy": "report", "last": last}
    lines = client.status_table(data, now).splitlines()
    assert lines[6:] == [
        "",
        "npu health: every 15s, policy report; read 2s ago (17 tool runs)",
        "  server-1: NPU 3 chip 0: health Alarm",
        f"  unknown: {error}",
    ]
