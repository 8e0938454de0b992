"""Kubernetes-style checks, answered from a snapshot of the engine: never a request to a child.

/readyz is the engine's own judgement (runtime/health.py): every serving process's readiness
observed since its last start, the Coordinator's after every Server's, nothing disrupted since,
and no Server with a bad chip or link (runtime/npuwatch.py).
The checks below explain it; they cannot disagree with it, because they read the same facts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from supervisor_pd.runtime.snapshot import Snapshot
from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import Phase

HEARTBEAT_LIMIT = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def liveness(view: Snapshot) -> list[Check]:
    age = time.monotonic() - view.heartbeat
    guardian = view.guardian
    restarted = f" (started again {guardian.restarts} time(s); last: {guardian.last_exit})" if guardian.restarts else ""
    return [
        Check("loop", age < HEARTBEAT_LIMIT, f"the supervision loop last ran {age:.1f} s ago"),
        Check(
            "guardian",
            guardian.pid is not None or not guardian.begun,
            (
                f"pid {guardian.pid}"
                if guardian.pid is not None
                else "not running, being started again"
                if guardian.begun
                else "not started yet (no child runs yet)"
            )
            + restarted,
        ),
        Check("escalation", view.phase is not Phase.FAILED, view.exit_reason or "no escalation under way"),
    ]


def readiness(view: Snapshot) -> list[Check]:
    servers = view.of_kind(Kind.SERVER)
    ready = [p for p in servers if p.ready]
    missing = [f"{p.name} ({p.serving_detail})" if p.serving_detail else p.name for p in servers if not p.ready]
    prefill = [p.name for p in ready if p.role == "prefill"]
    decode = [p.name for p in ready if p.role == "decode"]
    coordinator = next(iter(view.of_kind(Kind.COORDINATOR)), None)
    coordinator_ok = coordinator is not None and coordinator.ready
    return [
        Check(
            "coordinator",
            coordinator_ok,
            "the Coordinator is ready, as seen after every Server"
            if coordinator_ok
            else "the Coordinator is not ready",
        ),
        Check("prefill", bool(prefill), f"ready: {', '.join(prefill)}" if prefill else "no prefill Server is ready"),
        Check("decode", bool(decode), f"ready: {', '.join(decode)}" if decode else "no decode Server is ready"),
        Check("servers", not missing, f"not ready: {', '.join(missing)}" if missing else "every Server is role-ready"),
        npu(view),
        Check("service", view.ready, f"{view.phase.value}: {view.phase_reason}"),
        Check("not-draining", not view.stopping, f"service {view.phase.value}"),
    ]


def npu(view: Snapshot) -> Check:
    """Fails when a Server has a bad chip or link; a tool that does not answer is only named."""
    faults = [f"{p.name}: {p.npu_fault}" for p in view.of_kind(Kind.SERVER) if p.npu_fault]
    if faults:
        return Check("npu", False, "; ".join(faults))
    watch = view.npu
    if not watch.enabled:
        return Check("npu", True, "not watched (SUPERVISOR_PD_NPU_HEALTH_INTERVAL=0)")
    if watch.last is None:
        return Check("npu", True, "no collection yet")
    age = time.monotonic() - watch.last.finished
    failing = sorted({failure.tool for failure in watch.last.failures})
    if failing:
        return Check("npu", True, f"no known fault; unknown now: {', '.join(failing)} failed (read {age:.1f} s ago)")
    return Check("npu", True, f"no chip or link fault (read {age:.1f} s ago)")


def startup(view: Snapshot) -> list[Check]:
    checks = [Check(p.name, p.ever_up, "came up" if p.ever_up else p.state.value) for p in view.processes]
    checks.append(Check("service", view.ever_ready, "was ready" if view.ever_ready else "not ready yet"))
    return checks
