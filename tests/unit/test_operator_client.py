"""The operator client's waits and streams against a scripted supervisor: exit codes, one-line
reasons, the terminal redraw, and reading a chunked reply as it arrives."""

from __future__ import annotations

import argparse
import io
import socket
import threading
from typing import Any

import pytest

from supervisor_pd.client import watch
from supervisor_pd.client.api import Unreachable, _chunks


class Scripted:
    """Answers GET /v1/status from a list, one per call (the last one again when it runs out)."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.where = "/tmp/api.sock"
        self.calls = 0

    def json(self, method: str, path: str) -> tuple[int, Any]:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return 200, answer


def status(phase: str, why: str = "why", ready: bool = False, **server: Any) -> dict[str, Any]:
    """A /v1/status with one process, server-1, whose fields `server` overrides."""
    process = {"name": "server-1", "pid": 10, "state": "running", "restarts": 0, "last_exit": None, "reason": ""}
    process.update(server)
    return {"phase": phase, "phase_reason": why, "ready": ready, "processes": [process]}


def wait(api: Scripted, condition: str, timeout: float) -> int:
    args = argparse.Namespace(condition=condition, wait_timeout=timeout)
    return watch.cmd_wait(api, args)  # type: ignore[arg-type]


def test_wait_for_ready(capsys: pytest.CaptureFixture[str]) -> None:
    api = Scripted(Unreachable("not yet"), status("starting", "server-1 (loading 3s)"), status("ready", "ok", True))
    assert wait(api, "ready", 10) == 0
    assert capsys.readouterr().out == "ready: the service is ready (ok)\n"
    assert api.calls == 3  # an absent supervisor is waited for, as one that is starting


def test_wait_for_ready_ends_at_once_when_it_can_no_longer_hold(capsys: pytest.CaptureFixture[str]) -> None:
    assert wait(Scripted(status("draining", "SIGTERM received")), "ready", 10) == 1
    assert capsys.readouterr().err == "wait: the service is draining: it will not be ready (SIGTERM received)\n"


def test_a_wait_that_times_out_exits_3_with_what_it_last_saw(capsys: pytest.CaptureFixture[str]) -> None:
    assert wait(Scripted(status("degraded", "not ready: server-2 (stopped)")), "ready", 0.2) == 3
    err = capsys.readouterr().err
    assert (
        err
        == "wait: timed out after 0.2 s waiting for ready: the service is degraded (not ready: server-2 (stopped))\n"
    )


def test_wait_for_stopped_holds_when_the_supervisor_is_gone_or_its_phase_is_stopped() -> None:
    assert wait(Scripted(status("draining"), Unreachable("gone")), "stopped", 10) == 0
    assert wait(Scripted(status("stopped")), "stopped", 10) == 0


def test_restart_wait_fails_with_the_reason_when_the_process_fails_again(capsys: pytest.CaptureFixture[str]) -> None:
    before = status("ready")["processes"][0]
    crashed = status(
        "degraded", pid=None, state="backoff", restarts=2, last_exit="exit code 1", reason="restart in 1 s"
    )
    api = Scripted(status("degraded", pid=None, state="stopping"), crashed)
    assert watch.until_back(api, "server-1", before, 1, 10, "restart") == 1  # type: ignore[arg-type]
    assert capsys.readouterr().err == "restart: server-1 failed again after it: exit code 1 (restart in 1 s)\n"


def test_restart_wait_returns_once_a_new_pid_serves(capsys: pytest.CaptureFixture[str]) -> None:
    before = status("ready")["processes"][0]
    loading = status("degraded", pid=11, restarts=1, serving={"state": "loading", "detail": "loading 1s"})
    back = status("ready", pid=11, restarts=1, serving={"state": "role-ready"})
    api = Scripted(status("ready"), loading, back)
    assert watch.until_back(api, "server-1", before, 1, 10, "restart") == 0  # type: ignore[arg-type]
    assert capsys.readouterr().out.startswith("server-1: back, pid 11, role-ready after ")


def test_status_watch_redraws_in_place_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    out.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr(watch, "status_table", lambda data, now: "phase: ready\nrow\n")
    args = argparse.Namespace(interval=0.01, count=2)
    assert watch.watch_status(Scripted(status("ready")), args) == 0  # type: ignore[arg-type]
    frames = out.getvalue().split(watch.HOME)[1:]
    assert len(frames) == 2
    assert all(frame.endswith("row" + watch.EOL + "\n" + watch.EOS) for frame in frames)


def test_a_chunked_reply_is_read_as_each_chunk_arrives() -> None:
    left, right = socket.socketpair()
    with left, right:
        reader = left.makefile("rb")
        chunks = _chunks(reader)
        right.sendall(b"6\r\nfirst\n\r\n")
        assert next(chunks) == b"first\n"  # before the rest was even written
        sent = threading.Event()

        def later() -> None:
            right.sendall(b"7\r\nsecond\n\r\n0\r\n\r\n")
            sent.set()

        threading.Thread(target=later).start()
        assert next(chunks) == b"second\n"
        assert sent.wait(5)
        assert list(chunks) == []
