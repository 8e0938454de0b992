"""Serving state: what each process is to the service, and progress lines while it loads.

A Server is `running` (its process state) as soon as it answers its management endpoints, but on
an 800I it then loads its model for minutes before the Controller can give it a role. The serving
state says that in a word of its own (`loading`), with the time it began, so `status`, the phase's
reason and /readyz can say which Server is behind and for how long. While a process loads, the
log gets one progress line for it every SUPERVISOR_PD_PROGRESS_SECONDS, never a flood.

The state is derived, in the same loop turn, from the facts the engine already keeps (process
state, readiness counted by runtime/health.py, the role status the Server reports, NPU faults):
it can never disagree with /readyz.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import UP, ProcState, Serving

if TYPE_CHECKING:
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.engine import Engine

# A Server's roleStatus while its role changes (MindIE-LLM src/server/endpoint/http_wrapper/http_handler.cpp:74-76).
ROLE_SWITCHING = "RoleSwitching"


def duration(seconds: float) -> str:
    """3m12s, 1h04m, 45s: as `kubectl get` shows ages, to the second while it is short."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def serving_of(child: Child, counts: bool) -> Serving:
    """`counts`: its readiness counts now (Health.counts)."""
    if child.state not in UP and child.state is not ProcState.STARTING:
        return Serving.DOWN
    if child.npu_fault is not None:
        return Serving.NPU_FAULT
    server = child.kind is Kind.SERVER
    if counts:
        return Serving.ROLE_READY if server else Serving.READY
    if child.spec.ready is None:  # the Controller: answering its endpoints is all there is to know
        return Serving.READY if child.state in UP else Serving.LOADING
    if server and child.role_status == ROLE_SWITCHING:
        return Serving.SWITCHING
    return Serving.NOT_READY if child.ready_in_run else Serving.LOADING


class Progress:
    """Keeps every child's serving state current and writes the loading progress lines."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.interval = engine.settings.progress_seconds
        self.next_line: dict[str, float] = {}
        # A process not started yet has been pending, and down, since the engine began: not since 1970.
        for child in engine.children.values():
            child.since = child.serving_since = engine.fx.wall()

    def update(self) -> None:
        engine = self.engine
        for child in engine.children.values():
            state = serving_of(child, engine.health.counts(child))
            if state is child.serving:
                continue
            child.serving, child.serving_since = state, engine.fx.wall()
            if state is Serving.LOADING:
                self.next_line[child.name] = engine.fx.now() + self.interval
            else:
                self.next_line.pop(child.name, None)

    def loading_for(self, child: Child) -> float:
        """Seconds since its current run started (a load begins with the process)."""
        started = child.started_at if child.started_at is not None else self.engine.fx.now()
        return self.engine.fx.now() - started

    def tick(self, now: float) -> None:
        if self.interval <= 0:
            return
        for name, due in list(self.next_line.items()):
            if now < due:
                continue
            child = self.engine.children[name]
            self.next_line[name] = now + self.interval
            self.engine.log(f"{name}: loading for {duration(self.loading_for(child))} ({self.waiting_on(child)})")

    def moments(self) -> list[float]:
        return list(self.next_line.values()) if self.interval > 0 else []

    def waiting_on(self, child: Child) -> str:
        """What a loading process has not done yet, in the terms of its checks."""
        if child.state is ProcState.STARTING:
            endpoints = " and ".join(check.path for check in child.spec.up)
            left = (child.start_deadline or 0.0) - self.engine.fx.now()
            return f"starting: has not answered {endpoints} yet; start deadline in {duration(left)}"
        if child.kind is Kind.SERVER:
            status = child.role_status or "not reported"
            return f"running, not role-ready: roleStatus {status}, waiting for the model and the Controller's role"
        return f"{child.state.value}, not ready yet"
