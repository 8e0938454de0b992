"""A read-only view of the engine for the HTTP layer: built on demand, never shared mutable state.

The API answers probes, status and metrics from a `Snapshot` and acts only by posting commands
(runtime/events.py), so nothing outside the loop ever writes the engine's state. A snapshot
is built synchronously on the loop's thread, so it is consistent: the readiness it reports is the
engine's own judgement at that moment, in the same loop turn as the last event handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor_pd.runtime.events import NpuReport
from supervisor_pd.runtime.npucollect import ChipResult
from supervisor_pd.runtime.probes import Result
from supervisor_pd.runtime.rolling import RollingView
from supervisor_pd.runtime.spec import Kind, ProcessSpec
from supervisor_pd.runtime.states import ALIVE, STOPPING_PHASES, UP, Phase, ProcState, Serving

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
    npu_fault: str | None  # a Server's bad chip or link (runtime/npuwatch.py)
    serving: Serving  # what it is to the service (runtime/serving.py)
    serving_since: float  # wall clock
    serving_detail: str  # for a process not ready: what it waits for, how long (the phase reason's words)
    restart_causes: Mapping[str, int]  # restarts per RestartCause value, only those that happened
    last_restart_cause: str | None

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
class ChipView:
    server: str
    npu_id: int
    chip_id: int
    phy_id: int
    logical_id: int
    link_checked: bool  # a real device IP: hccn_tool is asked about it
    latest: ChipResult | None  # the last collection's result (None: no collection yet)
    faults: tuple[str, ...]  # its verdict, from the last collection that could tell
    information: str | None  # npu-smi's words for a health fault


@dataclass(frozen=True)
class NpuView:
    enabled: bool
    interval: float
    policy: str
    chips: tuple[ChipView, ...]
    collections: int
    last: NpuReport | None
    running_since: float | None  # a collection under way since (monotonic)
    errors: dict[str, int]  # tool failures since the start, per tool


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
    npu: NpuView
    rolling: RollingView | None = None  # the last rolling restart asked for (runtime/rolling.py)

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
                npu_fault=child.npu_fault,
                serving=child.serving,
                serving_since=child.serving_since,
                serving_detail="" if engine.health.counts(child) else engine.health.not_ready_because(child),
                restart_causes=dict(child.restart_causes),
                last_restart_cause=child.last_restart_cause.value if child.last_restart_cause else None,
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
        npu=_npu(engine),
        rolling=engine.operator.view(),
    )


def _npu(engine: Engine) -> NpuView:
    watch = engine.health.npu
    chips = tuple(
        ChipView(
            server=state.server,
            npu_id=state.target.npu_id,
            chip_id=state.target.chip_id,
            phy_id=state.target.phy_id,
            logical_id=state.logical_id,
            link_checked=state.target.link,
            latest=state.latest,
            faults=tuple(state.faults),
            information=state.information,
        )
        for state in watch.chips.values()
    )
    return NpuView(
        enabled=watch.enabled,
        interval=watch.interval,
        policy=watch.policy,
        chips=chips,
        collections=watch.collections,
        last=watch.last,
        running_since=watch.running_since,
        errors=dict(watch.tools.errors),
    )
