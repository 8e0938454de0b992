"""A read-only view of the engine for the HTTP layer: built on demand, never shared mutable state.

The API answers probes, status and metrics from a `Snapshot` and acts only by posting commands
(runtime/events.py), so nothing outside the loop ever writes the engine's state. A snapshot
is built synchronously on the loop's thread, so it is consistent: the readiness it reports is the
engine's own judgement at that moment, in the same loop turn as the last event handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor_pd.runtime.probes import Result
from supervisor_pd.runtime.spec import Kind, ProcessSpec
from supervisor_pd.runtime.states import ALIVE, STOPPING_PHASES, UP, Phase, ProcState

if TYPE_CHECKING:
    from supervisor_pd.runtime.engine import Engine


@dataclass(frozen=True)
class ProcessView:
    name: str
    kind: Kind
    spec: ProcessSpec
    state: ProcState
    since: float
    reason: str
    pid: int | None
    restarts: int
    last_exit: str | None
    health: Result | None
    health_wall: float | None
    ever_up: bool
    ready: bool  # its readiness counts now (see runtime/health.py)
    role: str | None  # the role it reports, else the planned one

    @property
    def up(self) -> bool:
        return self.state in UP

    @property
    def alive(self) -> bool:
        return self.state in ALIVE


@dataclass(frozen=True)
class GuardianView:
    pid: int | None
    restarts: int
    last_exit: str | None
    begun: bool  # the loop has started it at least once (before that, no child runs either)


@dataclass(frozen=True)
class Snapshot:
    phase: Phase
    phase_reason: str
    phase_since: float
    started: float
    ever_ready: bool
    ready: bool  # every serving process's readiness counts, and the service is not stopping
    exit_reason: str
    heartbeat: float
    guardian: GuardianView
    processes: tuple[ProcessView, ...]

    @property
    def stopping(self) -> bool:
        return self.phase in STOPPING_PHASES

    def process(self, name: str) -> ProcessView | None:
        return next((p for p in self.processes if p.name == name), None)

    def of_kind(self, kind: Kind) -> list[ProcessView]:
        return [p for p in self.processes if p.kind is kind]


def snapshot(engine: Engine, heartbeat: float) -> Snapshot:
    views = []
    for child in engine.children.values():
        planned = child.spec.server.role.value if child.spec.server is not None else None
        views.append(
            ProcessView(
                name=child.name,
                kind=child.kind,
                spec=child.spec,
                state=child.state,
                since=child.since,
                reason=child.reason,
                pid=child.pid,
                restarts=child.restarts,
                last_exit=child.last_exit,
                health=child.health,
                health_wall=child.health_wall,
                ever_up=child.ever_up,
                ready=engine.health.counts(child),
                role=child.current_role if child.current_role in ("prefill", "decode") else planned,
            )
        )
    guardian = engine.guardian
    return Snapshot(
        phase=engine.phase,
        phase_reason=engine.phase_reason,
        phase_since=engine.phase_since,
        started=engine.started,
        ever_ready=engine.ever_ready,
        ready=engine.phase is Phase.READY,
        exit_reason=engine.exit_reason,
        heartbeat=heartbeat,
        guardian=GuardianView(guardian.pid, guardian.restarts, guardian.last_exit, guardian.begun),
        processes=tuple(views),
    )
