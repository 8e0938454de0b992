"""Kubernetes-style checks, answered from the supervisor's memory: never a request to a child."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import Phase, ProcState

if TYPE_CHECKING:
    from supervisor_pd.runtime.supervisor import Supervisor

HEARTBEAT_LIMIT = 10.0
_UP = (ProcState.READY, ProcState.UNHEALTHY)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def liveness(supervisor: Supervisor) -> list[Check]:
    age = time.monotonic() - supervisor.heartbeat
    return [
        Check("loop", age < HEARTBEAT_LIMIT, f"the supervision loop last ran {age:.1f} s ago"),
        Check(
            "escalation",
            supervisor.phase is not Phase.FAILED,
            supervisor.exit_reason or "no escalation under way",
        ),
    ]


def _role(supervisor: Supervisor, name: str) -> str | None:
    child = supervisor.children[name]
    if child.current_role in ("prefill", "decode"):
        return child.current_role
    planned = child.spec.server.role.value if child.spec.server is not None else None
    return planned if planned in ("prefill", "decode") else None


def readiness(supervisor: Supervisor) -> list[Check]:
    coordinator = supervisor.coordinator
    coordinator_ok = supervisor.coordinator_ready and coordinator.state in _UP
    ready = [
        name
        for name, ok in supervisor.servers_ready.items()
        if ok and supervisor.children[name].state in _UP and supervisor.children[name].kind is Kind.SERVER
    ]
    prefill = [name for name in ready if _role(supervisor, name) == "prefill"]
    decode = [name for name in ready if _role(supervisor, name) == "decode"]
    draining = supervisor.phase in (Phase.DRAINING, Phase.STOPPED, Phase.FAILED)
    return [
        Check("coordinator", coordinator_ok, "the Coordinator is " + ("ready" if coordinator_ok else "not ready")),
        Check("prefill", bool(prefill), f"ready: {', '.join(prefill)}" if prefill else "no prefill Server is ready"),
        Check("decode", bool(decode), f"ready: {', '.join(decode)}" if decode else "no decode Server is ready"),
        Check("not-draining", not draining, f"service {supervisor.phase.value}"),
    ]


def startup(supervisor: Supervisor) -> list[Check]:
    checks = [
        Check(child.name, child.ready_once, "reached ready" if child.ready_once else f"{child.state.value}")
        for child in supervisor.children.values()
    ]
    checks.append(Check("service", supervisor.ever_ready, "was ready" if supervisor.ever_ready else "not ready yet"))
    return checks
