"""The rolling restart of the Servers: one at a time, each back (role-ready, the service ready
again) before the next, and refused where MindIE's behaviour makes a roll without an outage
impossible. The sources (MindIE-Motor, mindie_motor/src/), also in docs/running.md "Operating it":

- Before the first ready the Controller brings every Server up as one group, all or nothing: one
  that fails its role leaves the group faulty (controller/node_scheduler/NodeScheduler.cpp:1609-1616,
  1633-1638). Refused until the service has been ready, and refused while it is not ready now.
- After that a restarted Server comes back `RoleUnknown` and the Controller re-admits it alone:
  unlinks it from its peers, posts its role, links it again (NodeScheduler.cpp:1267-1301
  ProcessRoleUnknownForPD). That needs the Controller: refused while it is not running.
- The Coordinator is ready only with at least one prefill and one decode instance
  (coordinator/cluster_monitor/ClusterNodes.cpp:305-335): a role with one Server cannot roll
  without an outage.
- The Coordinator keeps a `/dresult` stream to each decode instance; when it breaks and cannot be
  relinked it removes every instance sharing the lost one's virtual id and refuses them for two
  minutes (request_repeater/pd_repeater/DRequestRepeater.cpp:110-116,
  request_repeater/exception_handler/DExceptionHandler.cpp:50-85,
  controller_listener/ControllerListener.cpp:367-380). In single-container mode every instance has
  virtual id 1 (controller/node_scheduler/rank_table_loader/RankTableLoader.cpp:290-345 sets none,
  controller/cluster_status/NodeStatus.h:89 defaults it). Only an instance the Controller already
  dropped from its refresh escapes that (DExceptionHandler.cpp:27-33: its address is gone), and a
  Server on SIGTERM turns unhealthy and waits 5 s before it kills its group (MindIE-LLM
  src/server/daemon/llm_daemon.cpp:193-210), but its main thread may stop the endpoint at once
  (llm_daemon.cpp:326-337), cutting the link before the Controller's next status round
  (ServerRequestHandler.cpp:501-509) drops it. So a decode Server's restart may take the whole
  service down until supervisor_pd restarts the Coordinator (runtime/mindie.py): a roll of decode
  Servers is refused unless the operator accepts that (`allow_outage`). The simulator keeps its
  endpoint through the 5 s and shows no outage: it is the optimistic case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from supervisor_pd.runtime.states import STOPPING_PHASES, UP, Phase, ProcState, RestartCause

if TYPE_CHECKING:
    from supervisor_pd.runtime.engine import Engine
    from supervisor_pd.runtime.events import RollingRestart

ROLES = ("prefill", "decode")


@dataclass(frozen=True)
class ServerFact:
    name: str
    role: str
    state: ProcState
    ready: bool  # its readiness counts now


@dataclass(frozen=True)
class RollingView:
    token: str
    state: str  # running, done, failed, refused
    role: str | None
    allow_outage: bool
    order: tuple[str, ...]
    done: tuple[str, ...]
    current: str | None
    reason: str
    started: float  # wall clock
    finished: float | None

    @classmethod
    def refused(cls, command: RollingRestart, reason: str, wall: float) -> RollingView:
        return cls(command.token, "refused", command.role, command.allow_outage, (), (), None, reason, wall, wall)


def rolling_refusal(
    phase: Phase,
    ever_ready: bool,
    servers: list[ServerFact],
    controller_up: bool,
    role: str | None,
    allow_outage: bool,
    active: bool = False,
) -> tuple[list[str], str | None]:
    """The Servers a roll restarts, in order (prefill first), or why it cannot be done now.

    Judged from the same facts by the HTTP layer (from a snapshot, to answer 409 at once) and by
    the engine (when the command arrives)."""
    if active:
        return [], "a rolling restart is under way"
    if phase in STOPPING_PHASES:
        return [], f"the service is {phase.value}"
    if not ever_ready:
        return [], (
            "the service has never been ready: MindIE's Controller brings every Server up as one group, all or "
            "nothing (MindIE-Motor NodeScheduler.cpp:1609-1638), and a Server restarted before that leaves it faulty"
        )
    if phase is not Phase.READY:
        return [], f"the service is {phase.value}, not ready: a roll keeps a service serving only from ready"
    if not controller_up:
        return [], "the Controller is not running: nothing would give a restarted Server its role back"
    targets = [s for s in servers if role is None or s.role == role]
    if not targets:
        return [], f"there is no {role} Server"
    order = [s.name for r in ROLES for s in targets if s.role == r] + [s.name for s in targets if s.role not in ROLES]
    if allow_outage:
        return order, None
    for each in ROLES:
        mine = [s.name for s in servers if s.role == each]
        if len(mine) == 1 and mine[0] in order:
            return [], (
                f"{mine[0]} is the only {each} Server: while it restarts MindIE's Coordinator has no {each} instance "
                "and serves nothing (ClusterNodes.cpp:305-335), so no roll avoids an outage (--allow-outage to roll "
                "anyway)"
            )
    if any(s.role == "decode" for s in targets):
        return [], (
            "restarting a decode Server can take the whole service down: when MindIE's Coordinator loses its "
            "/dresult link before the Controller drops the Server, it quarantines every instance for 2 minutes "
            "(DExceptionHandler.cpp:50-85; all share virtual id 1 in single-container mode) until supervisor_pd "
            "restarts the Coordinator; roll the prefill Servers alone (--role prefill) or accept that outage "
            "(--allow-outage)"
        )
    return order, None


@dataclass
class Step:
    name: str
    run: int  # its run when it was restarted: back means a later run
    restarts: int  # its restart count just before: one more is ours, two more a failure after it
    deadline: float


@dataclass
class Rolling:
    engine: Engine
    command: RollingRestart
    order: list[str]
    done: list[str] = field(default_factory=list)
    step: Step | None = None
    state: str = "running"
    reason: str = ""
    started: float = 0.0
    finished: float | None = None

    def __post_init__(self) -> None:
        self.started = self.engine.fx.wall()
        names = ", ".join(self.order)
        self.engine.log(f"rolling restart of {names}: one at a time, each back to role-ready before the next")

    @property
    def running(self) -> bool:
        return self.state == "running"

    def tick(self, now: float) -> None:
        engine = self.engine
        if not self.running:
            return
        if engine.phase in STOPPING_PHASES:
            self._end("failed", f"the service is {engine.phase.value}")
            return
        if self.step is not None and not self._step_over(now):
            return
        left = [name for name in self.order if name not in self.done]
        if not left:
            self._end("done", f"every Server restarted and back ({len(self.done)})")
            return
        child = engine.children[left[0]]
        if child.state not in UP:
            self._end("failed", f"{child.name} is {child.state.value}, not restarted")
            return
        limit = engine.settings.ready_seconds
        self.step = Step(child.name, child.run, child.restarts, now + limit)
        place = f"{len(self.done) + 1} of {len(self.order)}"
        engine.restart(child, f"rolling restart ({place})", graceful=True, cause=RestartCause.OPERATOR)

    def _step_over(self, now: float) -> bool:
        """True once the Server being restarted is back and the service ready again."""
        assert self.step is not None
        engine, step = self.engine, self.step
        child = engine.children[step.name]
        if child.state in (ProcState.STOPPED, ProcState.FAILED):
            self._end("failed", f"{child.name} is {child.state.value}")
        elif child.restarts > step.restarts + 1:
            self._end("failed", f"{child.name} failed after its restart ({child.last_exit}); the rest not restarted")
        elif child.run > step.run and engine.health.counts(child) and engine.phase is Phase.READY:
            took = now - (step.deadline - engine.settings.ready_seconds)
            engine.log(f"rolling restart: {child.name} is back and the service ready after {took:.1f} s")
            self.done.append(child.name)
            self.step = None
            return True
        elif now >= step.deadline:
            self._end("failed", f"{child.name} was not back within {engine.settings.ready_seconds:g} s")
        return False

    def _end(self, state: str, reason: str) -> None:
        self.state, self.reason, self.finished = state, reason, self.engine.fx.wall()
        self.step = None
        word = "done" if state == "done" else "stopped"
        self.engine.log(f"rolling restart {word}: {reason}")

    def moments(self) -> list[float]:
        return [self.step.deadline] if self.running and self.step is not None else []

    def view(self) -> RollingView:
        command = self.command
        current = self.step.name if self.step is not None else None
        return RollingView(
            command.token,
            self.state,
            command.role,
            command.allow_outage,
            tuple(self.order),
            tuple(self.done),
            current,
            self.reason,
            self.started,
            self.finished,
        )
