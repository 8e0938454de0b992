"""The probes' checks, judged from snapshots of an engine driven by events (no process)."""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from typing import Any

from supervisor_pd.api.health import HEARTBEAT_LIMIT, liveness, readiness, startup
from supervisor_pd.runtime.events import Exited
from supervisor_pd.runtime.snapshot import snapshot
from supervisor_pd.runtime.states import Phase
from tests.unit.runtime.fakes import Stack


def passed(checks: list[Any]) -> dict[str, bool]:
    return {check.name: check.ok for check in checks}


def view(stack: Stack, heartbeat: float | None = None) -> Any:
    return snapshot(stack.engine, time.monotonic() if heartbeat is None else heartbeat)


def test_a_ready_service_passes_everything() -> None:
    stack = Stack()
    stack.bring_up()
    assert all(passed(readiness(view(stack))).values())
    assert all(passed(liveness(view(stack))).values())
    assert all(passed(startup(view(stack))).values())


def test_readiness_fails_in_the_same_turn_as_an_exit_and_names_what_is_missing() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("server-1", tick=False)
    checks = {c.name: c for c in readiness(view(stack))}
    assert checks["servers"].ok is False and checks["servers"].detail == "not ready: server-1 (backoff)"
    assert checks["coordinator"].ok is False  # its readiness reflected server-1's
    assert checks["prefill"].detail == "ready: server-2"
    assert checks["service"].ok is False


def test_readiness_needs_a_prefill_and_a_decode() -> None:
    stack = Stack()
    stack.bring_up()
    for name in ("server-3", "server-4"):
        stack.exit(name)
    checks = passed(readiness(view(stack)))
    assert checks["prefill"] is True and checks["decode"] is False


def test_readiness_fails_while_draining() -> None:
    stack = Stack()
    stack.bring_up()
    stack.drain()
    checks = passed(readiness(view(stack)))
    assert checks["not-draining"] is False and checks["service"] is False


def test_liveness_fails_on_a_stale_heartbeat_an_escalation_or_no_guardian() -> None:
    stack = Stack()
    stack.bring_up()
    assert passed(liveness(view(stack, time.monotonic() - HEARTBEAT_LIMIT - 1)))["loop"] is False
    stack.post(Exited(stack.engine.guardian.pid, -signal.SIGKILL), tick=False)
    assert passed(liveness(view(stack)))["guardian"] is False
    stack.advance(1.1)  # started again (not at once: it had just been started)
    checks = {c.name: c for c in liveness(view(stack))}
    assert checks["guardian"].ok is True
    assert "started again 1 time(s); last: killed by SIGKILL" in checks["guardian"].detail
    failed = replace(view(stack), phase=Phase.FAILED, exit_reason="server-2 failed too often")
    checks = {c.name: c for c in liveness(failed)}
    assert checks["escalation"].ok is False
    assert checks["escalation"].detail == "server-2 failed too often"


def test_startup_names_each_process_that_never_came_up() -> None:
    stack = Stack()
    stack.tick()
    for name in stack.servers:
        stack.up(name)
    checks = {c.name: c for c in startup(view(stack))}
    assert checks["coordinator"].ok is False and checks["coordinator"].detail == "starting"
    assert checks["controller"].detail == "pending"
    assert checks["service"].ok is False
    assert checks["server-1"].ok is True
