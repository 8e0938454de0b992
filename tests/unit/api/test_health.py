"""The probes' checks, judged from a supervisor's state alone."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from supervisor_pd.api.health import HEARTBEAT_LIMIT, liveness, readiness, startup
from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import Phase, ProcState


def child(name: str, kind: Kind, state: ProcState = ProcState.READY, role: str | None = None, once: bool = True) -> Any:
    server = SimpleNamespace(role=SimpleNamespace(value=role or "none")) if kind is Kind.SERVER else None
    return SimpleNamespace(
        name=name, kind=kind, state=state, current_role=role, ready_once=once, spec=SimpleNamespace(server=server)
    )


def supervisor(**changes: Any) -> Any:
    children = {
        "server-1": child("server-1", Kind.SERVER, role="prefill"),
        "server-2": child("server-2", Kind.SERVER, role="decode"),
        "coordinator": child("coordinator", Kind.COORDINATOR),
        "controller": child("controller", Kind.CONTROLLER),
    }
    fields = {
        "children": children,
        "coordinator": children["coordinator"],
        "coordinator_ready": True,
        "servers_ready": {"server-1": True, "server-2": True},
        "phase": Phase.READY,
        "heartbeat": time.monotonic(),
        "exit_reason": "",
        "ever_ready": True,
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


def passed(checks: list[Any]) -> dict[str, bool]:
    return {check.name: check.ok for check in checks}


def test_ready_service_passes_everything() -> None:
    sup = supervisor()
    assert all(passed(readiness(sup)).values())
    assert all(passed(liveness(sup)).values())
    assert all(passed(startup(sup)).values())


def test_readiness_needs_a_prefill_and_a_decode() -> None:
    sup = supervisor(servers_ready={"server-1": True, "server-2": False})
    assert passed(readiness(sup)) == {"coordinator": True, "prefill": True, "decode": False, "not-draining": True}
    sup = supervisor()
    sup.children["server-1"].state = ProcState.BACKOFF  # the readiness result is stale: it is down
    assert passed(readiness(sup))["prefill"] is False


def test_readiness_fails_while_draining_or_without_the_coordinator() -> None:
    assert passed(readiness(supervisor(phase=Phase.DRAINING)))["not-draining"] is False
    assert passed(readiness(supervisor(coordinator_ready=False)))["coordinator"] is False


def test_liveness_fails_on_a_stale_heartbeat_or_an_escalation() -> None:
    stale = supervisor(heartbeat=time.monotonic() - HEARTBEAT_LIMIT - 1)
    assert passed(liveness(stale))["loop"] is False
    failed = supervisor(phase=Phase.FAILED, exit_reason="server-2 failed too often")
    checks = {c.name: c for c in liveness(failed)}
    assert checks["escalation"].ok is False
    assert checks["escalation"].detail == "server-2 failed too often"


def test_startup_names_each_process_that_never_got_ready() -> None:
    sup = supervisor(ever_ready=False)
    sup.children["controller"].ready_once = False
    sup.children["controller"].state = ProcState.STARTING
    checks = {c.name: c for c in startup(sup)}
    assert checks["controller"].ok is False
    assert checks["controller"].detail == "starting"
    assert checks["service"].ok is False
    assert checks["server-1"].ok is True
