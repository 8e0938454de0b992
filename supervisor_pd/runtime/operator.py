"""An operator's stop and start of one process, with supervisorctl's meaning, and the rolling
restart (runtime/rolling.py): the engine's commands `Stop`, `Start` and `RollingRestart`.

A stopped process stays `stopped`: nothing restarts it, neither its own failures (it has none) nor
MindIE's rules (`Engine.restart` acts only on a live process), and its readiness does not count,
so a stopped Server or Coordinator leaves the service honestly not ready. `start` moves it back to
`pending`, where it passes the gates of any start: its dependencies, a start slot, its ports
released. To the processes that depend on it, one back from a stop is one back from a failure, so
MindIE's rules decide what it drags along (a Controller without its recovery file has the Servers
that hold roles restarted, as after its crash: runtime/mindie.py).

What a stop means to MindIE (docs/running.md, "Operating it"): a stopped Server drops out of the
Controller's refresh and the Coordinator removes it; a stopped decode Server also costs the
Coordinator its /dresult link, which in single-container mode quarantines every instance for two
minutes (runtime/rolling.py). A stopped Controller leaves the Coordinator routing with what it
has, but nothing gives a restarted Server its role back until it is started again.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from supervisor_pd.runtime.events import RollingRestart, Start, Stop
from supervisor_pd.runtime.rolling import Rolling, RollingView, ServerFact, rolling_refusal
from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import STOPPING_PHASES, UP, WAITING, Phase, ProcState

if TYPE_CHECKING:
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.engine import Engine

# Before the first ready, MindIE's Controller is bringing the Servers up as one group, all or
# nothing (MindIE-Motor controller/node_scheduler/NodeScheduler.cpp:1609-1616, 1633-1638).
NEVER_READY = (
    "the service has not been ready yet: MindIE's Controller brings every Server up as one group, all or nothing "
    "(MindIE-Motor NodeScheduler.cpp:1609-1638), so a process stopped now leaves that group faulty; "
    "wait for it to be ready (supervisor-pd wait --for ready), or drain"
)


def stop_refusal(name: str, state: ProcState, phase: Phase, ever_ready: bool) -> str | None:
    """Why `stop NAME` cannot be done now, or None."""
    if phase in STOPPING_PHASES:
        return f"the service is {phase.value}"
    if not ever_ready:
        return NEVER_READY
    if state is ProcState.STOPPED:
        return f"{name} is already stopped"
    if state is ProcState.FAILED:
        return f"{name} has failed"
    return None


def start_refusal(name: str, state: ProcState, phase: Phase) -> str | None:
    """Why `start NAME` cannot be done now, or None."""
    if phase in STOPPING_PHASES:
        return f"the service is {phase.value}"
    if state is not ProcState.STOPPED:
        return f"{name} is {state.value}: start brings back a stopped process (restart restarts a running one)"
    return None


class Operator:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stopping: set[str] = set()  # told to stop by an operator, not exited yet
        self.rolling: Rolling | None = None
        self.last_roll: RollingView | None = None  # a roll refused when its command arrived

    def handle(self, command: Stop | Start | RollingRestart) -> None:
        match command:
            case Stop():
                self.stop(command.name)
            case Start():
                self.start(command.name)
            case RollingRestart():
                self.roll(command)

    # --- stop and start ------------------------------------------------------------------

    def stop(self, name: str) -> None:
        engine = self.engine
        child = engine.children.get(name)
        if child is None:
            return
        refusal = stop_refusal(name, child.state, engine.phase, engine.ever_ready)
        if refusal is not None:
            engine.log(f"stop of {name} not done: {refusal}")
            return
        reason = "stop requested through the API"
        if child.state in WAITING:
            child.restart_at = None
            engine.transition(child, ProcState.STOPPED, reason)
            return
        self.stopping.add(name)
        if child.state is ProcState.STOPPING:
            # A restart under way ends in the stop instead of a start.
            child.restart_when_stopped, child.stop_cause = False, None
            engine.log(f"{name}: the restart under way ends in a stop ({reason})")
            return
        engine.health.disrupted(child)
        engine.transition(child, ProcState.STOPPING, reason)
        if child.pgid is not None:
            engine.fx.signal(child.pgid, signal.SIGTERM)
            child.stop_deadline = engine.fx.now() + engine.settings.stop_seconds
        else:
            engine.kill(child)

    def exited(self, child: Child) -> bool:
        """The exit of a process an operator stopped: it stays stopped. False: not one of those."""
        if child.name not in self.stopping or child.state is not ProcState.STOPPING:
            return False
        self.stopping.discard(child.name)
        child.last_exit = f"stopped through the API ({child.last_exit})"
        self.engine.transition(child, ProcState.STOPPED, child.last_exit)
        return True

    def start(self, name: str) -> None:
        engine = self.engine
        child = engine.children.get(name)
        if child is None:
            return
        refusal = start_refusal(name, child.state, engine.phase)
        if refusal is not None:
            engine.log(f"start of {name} not done: {refusal}")
            return
        child.restart_at = None
        engine.transition(
            child, ProcState.PENDING, "start requested through the API: starts once its dependencies allow"
        )
        engine.rules.failed(engine, child)

    # --- the rolling restart -------------------------------------------------------------

    def facts(self) -> tuple[list[ServerFact], bool]:
        """The Servers as a rolling restart judges them, and whether the Controller is up."""
        engine = self.engine
        servers = [
            ServerFact(c.name, _role(c), c.state, engine.health.counts(c))
            for c in engine.children.values()
            if c.kind is Kind.SERVER
        ]
        controller_up = any(c.kind is Kind.CONTROLLER and c.state in UP for c in engine.children.values())
        return servers, controller_up

    def roll(self, command: RollingRestart) -> None:
        engine = self.engine
        servers, controller_up = self.facts()
        active = self.rolling is not None and self.rolling.running
        order, refusal = rolling_refusal(
            engine.phase, engine.ever_ready, servers, controller_up, command.role, command.allow_outage, active
        )
        if refusal is not None:
            engine.log(f"rolling restart not done: {refusal}")
            self.last_roll = RollingView.refused(command, refusal, engine.fx.wall())
            return
        self.last_roll = None
        self.rolling = Rolling(engine, command, order)
        self.rolling.tick(engine.fx.now())

    def tick(self, now: float) -> None:
        if self.rolling is not None:
            self.rolling.tick(now)

    def moments(self) -> list[float]:
        return self.rolling.moments() if self.rolling is not None else []

    def view(self) -> RollingView | None:
        if self.last_roll is not None:
            return self.last_roll
        return self.rolling.view() if self.rolling is not None else None


def _role(child: Child) -> str:
    if child.current_role in ("prefill", "decode"):
        return child.current_role
    return child.spec.server.role.value if child.spec.server is not None else child.kind.value
