"""One supervised child: its spec and everything the engine knows about its current run."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from supervisor_pd.runtime.events import Probe
from supervisor_pd.runtime.probes import Result
from supervisor_pd.runtime.restart import Run
from supervisor_pd.runtime.spec import Kind, ProcessSpec
from supervisor_pd.runtime.states import ALIVE, WAITING, ProcState, RestartCause, Serving


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"


_STOPPED_FOR = {
    RestartCause.OPERATOR: "stopped for a restart requested through the API",
    RestartCause.DEPENDENCY: "stopped for a restart MindIE's rules required",
    RestartCause.TLS_RENEWAL: "stopped to load the renewed certificate",
}


def stopped_for(cause: RestartCause) -> str:
    """How the exit of a process stopped on purpose reads (a requested stop, not a crash)."""
    return _STOPPED_FOR.get(cause, f"stopped for a restart ({cause.value})")


@dataclass
class Readiness:
    """Readiness as a dated fact of one run: `since` when the current streak of successful checks
    began, `last` the latest success (both the time the request was sent). None: not ready."""

    since: float | None = None
    last: float | None = None

    def observe(self, ok: bool, sent: float) -> None:
        if not ok:
            self.clear()
            return
        if self.since is None:
            self.since = sent
        self.last = sent

    def clear(self) -> None:
        self.since = self.last = None


@dataclass
class Child:
    spec: ProcessSpec
    state: ProcState = ProcState.PENDING
    since: float = 0.0  # wall-clock time of the last state change
    reason: str = "not started yet"

    # The current run: `run` counts starts, so facts about an earlier run are recognised.
    run: int = 0
    pid: int | None = None
    pgid: int | None = None
    started_at: float | None = None
    start_deadline: float | None = None
    stop_deadline: float | None = None  # a graceful restart's SIGKILL time
    # Something of a run may be left (its group or descendants) until GroupGone says otherwise.
    remains: bool = False
    killing: bool = False  # kill_tree() was asked for this run
    restart_when_stopped: bool = False

    # Restarts: when the next start may happen, the failure history, the counts shown.
    restart_at: float | None = None
    history: list[Run] = field(default_factory=list)
    restarts: int = 0
    restart_causes: dict[str, int] = field(default_factory=dict)
    last_restart_cause: RestartCause | None = None
    stop_cause: RestartCause | None = None  # the cause of the restart a STOPPING child waits to exit for
    last_exit: str | None = None
    spawn_retries: int = 0  # starts put off for lack of the supervisor's own resources
    port_wait_since: float | None = None  # waiting for its exclusive ports to be released

    # Health: liveness failures in a row, the latest result, readiness as a dated fact.
    failures: int = 0
    next_live: float = 0.0
    next_up_probe: float = 0.0
    health: Result | None = None
    health_wall: float | None = None
    readiness: Readiness = field(default_factory=Readiness)
    ready_in_run: bool = False  # was ready at least once in this run (loading vs not-ready)
    ever_up: bool = False
    probing: set[Probe] = field(default_factory=set)

    # A Server's bad chip or link (runtime/npuwatch.py): a fact about its NPUs, so it outlives its runs.
    npu_fault: str | None = None

    # What it is to the service (runtime/serving.py), and since when (wall clock).
    serving: Serving = Serving.DOWN
    serving_since: float = 0.0

    # What the process says about itself (a Server's role), learned by the rules.
    role_status: str | None = None
    current_role: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    @property
    def alive(self) -> bool:
        return self.state in ALIVE

    @property
    def startable(self) -> bool:
        """Waiting to start, and nothing of an earlier run is left."""
        return self.state in WAITING and self.pid is None and not self.remains

    def count_restart(self, cause: RestartCause) -> None:
        self.restarts += 1
        self.restart_causes[cause.value] = self.restart_causes.get(cause.value, 0) + 1
        self.last_restart_cause = cause

    def forget_run(self) -> None:
        """What was true of the run that just ended is not true of the next one."""
        self.readiness.clear()
        self.ready_in_run = False
        self.probing.clear()
        self.failures = 0
        self.role_status = self.current_role = None
        self.stop_deadline = None
