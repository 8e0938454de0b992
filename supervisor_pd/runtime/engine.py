"""The engine: the state machine of the children and the service, driven by events and the clock.

    handle(event)  - a fact (exit, answer, group gone) or a command (signal, drain, restart)
    tick()         - deadlines, then start what may start, then the probes that are due
    next_wakeup()  - when tick() must run again if no event comes first

Nothing here waits or does I/O: every effect goes through `self.fx` (runtime/effects.py), and
the async loop in runtime/supervisor.py feeds the events in. Process states change only in
`transition()`, checked against runtime/states.py; the service's readiness is computed from
dated facts (runtime/health.py); the drain is its own state machine (runtime/drain.py); MindIE's
own rules (which restarts drag which processes along) are a `Rules` object (runtime/mindie.py).
"""

from __future__ import annotations

import errno
import signal

from supervisor_pd.errors import ExitCode
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime import states
from supervisor_pd.runtime.child import Child, describe_exit, stopped_for
from supervisor_pd.runtime.deadlines import check_deadlines
from supervisor_pd.runtime.drain import Drainer
from supervisor_pd.runtime.effects import Effects
from supervisor_pd.runtime.events import Answered, Drain, Event, Exited, GroupGone, HooksDone, Probe, Restart, Signal
from supervisor_pd.runtime.guardian_keeper import Guardian
from supervisor_pd.runtime.health import Health
from supervisor_pd.runtime.npuwatch import NpuReport
from supervisor_pd.runtime.operator import Operator
from supervisor_pd.runtime.port_wait import ports_released
from supervisor_pd.runtime.restart import Action, RestartPolicy, Run, decide
from supervisor_pd.runtime.rules import NoRules, Rules
from supervisor_pd.runtime.spec import ProcessSpec, dependency_levels
from supervisor_pd.runtime.states import ALIVE, FINAL, STOPPING_PHASES, UP, Phase, ProcState, RestartCause
from supervisor_pd.settings import Settings

# Errors that say the supervisor itself is short of something, not that the child is broken.
RESOURCE_ERRNOS = {errno.EMFILE: "file descriptors", errno.ENFILE: "file descriptors (system-wide)",
                   errno.EAGAIN: "processes", errno.ENOMEM: "memory"}  # fmt: skip
RESOURCE_RETRY_MAX = 5.0


class Engine:
    def __init__(
        self,
        specs: list[ProcessSpec] | tuple[ProcessSpec, ...],
        settings: Settings,
        fx: Effects,
        rules: Rules | None = None,
        strict: bool = False,
    ) -> None:
        self.settings = settings
        self.fx = fx
        self.rules: Rules = rules or NoRules()
        # Strict (the tests): an illegal transition raises. Otherwise it is logged and refused.
        self.strict = strict
        self.children: dict[str, Child] = {spec.name: Child(spec) for spec in specs}
        self.levels = dependency_levels(specs)
        self.policy = RestartPolicy(
            backoff=settings.restart_backoff,
            cap=settings.restart_backoff_max,
            stable_after=settings.restart_stable_seconds,
            budget=settings.restart_budget,
        )
        self.started = fx.now()
        self.phase = Phase.STARTING
        self.phase_since = self.started
        self.phase_reason = "starting"
        self.ever_ready = False
        self.first_ready_lines: list[str] = []  # logged once, right after the first "service ready"
        self.exit_code, self.exit_reason = ExitCode.OK, ""
        self.finished = False
        self.internal_errors = self.stop_signals = 0
        self.guardian = Guardian(fx, self._track)
        self.health = Health(self)  # with it, the NPU and link health watch (runtime/npuwatch.py)
        self.drainer: Drainer | None = None
        self._rules_due: float | None = None
        self.operator = Operator(self)  # an operator's stop, start and rolling restart

    # --- driving -------------------------------------------------------------------------

    def begin(self) -> None:
        self.guardian.start()

    def handle(self, event: Event) -> None:
        match event:
            case Exited():
                self.on_exited(event)
            case Answered():
                self.on_answered(event)
            case GroupGone():
                self.on_group_gone(event)
            case NpuReport():
                self.health.npu.reported(event)
            case HooksDone():
                if self.drainer is not None:
                    self.drainer.hooks_done = True
            case Signal():
                self.on_signal(event.signum)
            case Drain():
                if self.phase not in STOPPING_PHASES:
                    self.begin_drain(Phase.DRAINING, f"drain requested {event.source}".strip(), graceful=True)
            case Restart():
                self.on_restart(event.name, RestartCause(event.cause))
            case _:  # Stop, Start, RollingRestart
                self.operator.handle(event)
        self.health.judge()

    def tick(self) -> None:
        now = self.fx.now()
        if self.guardian.due(now):
            self.guardian.start()
        self.operator.tick(now)  # before the drain's early return: a roll under way ends with it
        if self.drainer is not None:
            self.drainer.advance(now)
            return
        check_deadlines(self, now)
        if self.phase in STOPPING_PHASES:
            return
        self._rules_due = self.rules.tick(self, now)
        self.reconcile(now)
        self.health.schedule(now)
        self.health.judge()

    def next_wakeup(self) -> float:
        """The next moment tick() has something to do. Each part lists only what tick() will act on
        when it is due (not a probe already on its way, not a start that waits for a dependency),
        so a moment already past means "at once" and never makes the loop spin."""
        now = self.fx.now()
        times = [now + 1.0]  # at least once a second, so the heartbeat /livez reads stays fresh
        if self.guardian.pid is None:
            times.append(self.guardian.next_start)
        if self.drainer is not None:
            times += self.drainer.moments()
        elif self.phase not in STOPPING_PHASES:
            times += self._moments(now)
        return max(now, min(times))

    def _moments(self, now: float) -> list[float]:
        times = [self.started + self.settings.ready_seconds] if self.phase is Phase.STARTING else []
        if self._rules_due is not None:
            times.append(self._rules_due)
        for child in self.children.values():
            if child.state is ProcState.STARTING and child.start_deadline is not None:
                times.append(child.start_deadline)
            elif child.state is ProcState.STOPPING and child.stop_deadline is not None:
                times.append(child.stop_deadline)
            elif child.startable and child.restart_at is not None and child.restart_at > now:
                times.append(child.restart_at)  # one already due waits for its dependencies: events
        return times + self.health.moments() + self.operator.moments()

    # --- facts ---------------------------------------------------------------------------

    def on_exited(self, event: Exited) -> None:
        if event.pid == self.guardian.pid:
            self.guardian.exited(describe_exit(event.code))
            return
        child = next((c for c in self.children.values() if c.pid == event.pid), None)
        if child is None:
            self.log(f"reaped orphan pid {event.pid} ({describe_exit(event.code)})")
            return
        child.pid = None
        child.last_exit = describe_exit(event.code)
        # Before anything else: what was observed of this run is no longer true.
        self.health.disrupted(child)
        self.kill(child)  # whatever it left behind: its group, its descendants
        if self.phase in STOPPING_PHASES:
            if child.state not in FINAL:
                self.transition(child, ProcState.STOPPED, child.last_exit)
        elif self.operator.exited(child):
            return  # an operator stopped it: it stays stopped
        elif child.state is ProcState.STOPPING and child.restart_when_stopped:
            # MindIE's processes end a requested stop with SIGABRT: say it was asked for, not a crash.
            cause = child.stop_cause or RestartCause.OPERATOR
            child.restart_when_stopped, child.restart_at = False, self.fx.now()
            child.last_exit = f"{stopped_for(cause)} ({child.last_exit})"
            child.count_restart(cause)
            self.transition(child, ProcState.BACKOFF, f"restarting: {child.last_exit}")
        elif child.state in ALIVE:
            self.fail(child, f"exited ({child.last_exit})", RestartCause.CRASH)

    def on_answered(self, event: Answered) -> None:
        child = self.children[event.name]
        self.health.settle_round(child, event)
        if event.run != child.run or child.pid is None:
            return  # an answer from a run that has ended
        child.probing.discard(event.probe)
        if event.probe in (Probe.IDLE, Probe.STOP):
            if self.drainer is not None:
                self.drainer.answered(child, event)
            return
        if self.phase in STOPPING_PHASES:
            return  # a process told to stop answers 503 on purpose: not a failure
        self.health.answered(child, event)
        self.rules.answered(self, child, event.probe, event.result)

    def on_group_gone(self, event: GroupGone) -> None:
        child = self.children[event.name]
        if event.run != child.run:
            return
        child.remains = False
        self._track()
        if self.drainer is not None:
            self.drainer.advance(self.fx.now())

    # --- commands ------------------------------------------------------------------------

    def on_signal(self, signum: int) -> None:
        self.stop_signals += 1
        name = signal.Signals(signum).name
        if self.stop_signals > 1 or self.phase is Phase.FAILED:
            self.log(f"{name} again: stopping now" if self.stop_signals > 1 else f"{name} while failing: stopping now")
            if self.drainer is None:
                self.drainer = Drainer(self, graceful=False)
            self.drainer.kill_everything()
            return
        if self.phase is Phase.DRAINING:  # a preStop hook asked for the drain first: let it finish
            self.log(f"{name} received: already draining")
            return
        self.begin_drain(Phase.DRAINING, f"{name} received", graceful=True)

    def on_restart(self, name: str, cause: RestartCause = RestartCause.OPERATOR) -> None:
        child = self.children.get(name)
        if child is None:
            return
        if self.phase in STOPPING_PHASES or child.state not in ALIVE or child.state is ProcState.STOPPING:
            self.log(f"restart of {name} not done: it is {child.state.value}, the service {self.phase.value}")
            return
        what = "restart requested through the API" if cause is RestartCause.OPERATOR else f"restart ({cause.value})"
        self.restart(child, what, graceful=True, cause=cause)

    # --- decisions -----------------------------------------------------------------------

    def fail(self, child: Child, reason: str, cause: RestartCause) -> None:
        """A failure of `child`: kill what is left of it, then restart after a backoff, or escalate."""
        now = self.fx.now()
        started = child.started_at if child.state in ALIVE and child.started_at is not None else now
        child.history.append(Run(started, now))
        self.health.disrupted(child)
        self.kill(child)
        decision = decide(self.policy, tuple(child.history))
        if decision.action is Action.ESCALATE:
            self.transition(child, ProcState.FAILED, f"{reason}; {decision.reason}")
            self.escalate(ExitCode.BUDGET_EXHAUSTED, f"{child.name} failed too often: {decision.reason}")
            return
        child.restart_at = now + decision.delay
        child.count_restart(cause)
        self.transition(child, ProcState.BACKOFF, f"{reason}; restart in {decision.delay:.1f} s ({decision.reason})")
        self.rules.failed(self, child)

    def restart(
        self, child: Child, reason: str, graceful: bool = False, cause: RestartCause = RestartCause.DEPENDENCY
    ) -> None:
        """A deliberate restart: not a failure, no backoff. Graceful: SIGTERM first, SIGKILL at a deadline."""
        if child.state not in ALIVE or child.state is ProcState.STOPPING:
            return
        child.restart_when_stopped, child.stop_cause = True, cause
        self.health.disrupted(child)
        self.transition(child, ProcState.STOPPING, reason)
        if graceful and child.pgid is not None:
            self.fx.signal(child.pgid, signal.SIGTERM)
            child.stop_deadline = self.fx.now() + self.settings.stop_seconds
        else:
            self.kill(child)

    def escalate(self, code: ExitCode, reason: str) -> None:
        if self.phase in STOPPING_PHASES:
            return
        self.exit_code, self.exit_reason = code, reason
        self.log(f"giving up: {reason} (exit code {int(code)})", "error")
        self.begin_drain(Phase.FAILED, reason, graceful=False)

    def begin_drain(self, phase: Phase, reason: str, graceful: bool) -> None:
        self.set_phase(phase, reason)
        for child in self.children.values():
            if child.state in states.WAITING:
                self.transition(child, ProcState.STOPPED, "not started: the service is stopping")
        self.drainer = Drainer(self, graceful=graceful)
        self.drainer.advance(self.fx.now())

    def reconcile(self, now: float) -> None:
        """Start whatever may start now: its delay over, its dependencies met, a slot in its group."""
        starting: dict[str, int] = {}
        for child in self.children.values():
            if child.spec.start_group and child.state is ProcState.STARTING:
                starting[child.spec.start_group] = starting.get(child.spec.start_group, 0) + 1
        for child in self.children.values():
            if not child.startable or (child.restart_at is not None and child.restart_at > now):
                continue
            if not self.dependencies_met(child):
                continue
            group = child.spec.start_group
            if group is not None:
                if starting.get(group, 0) >= (self.settings.start_concurrency or len(self.children)):
                    continue
                starting[group] = starting.get(group, 0) + 1
            self.start(child, now)

    def dependencies_met(self, child: Child) -> bool:
        for dependency in child.spec.depends_on:
            if dependency.first_start_only and child.run > 0:
                continue
            if self.children[dependency.name].state not in UP:
                return False
        return True

    # --- acting on processes -------------------------------------------------------------

    def start(self, child: Child, now: float) -> None:
        """Spawn `child`; `now` is the tick's, so what is due at once is done in the same tick."""
        if child.spec.exclusive_ports and not ports_released(self.fx, child, now, self.settings.port_wait_seconds):
            return
        try:
            pid = self.fx.spawn(child.spec, child.run + 1)
        except OSError as exc:
            short_of = RESOURCE_ERRNOS.get(exc.errno or 0)
            if short_of is None:
                self.fail(child, f"could not be started: {exc.strerror or exc}", RestartCause.CRASH)
                return
            # The supervisor's own trouble: retried, never charged to the child's budget.
            delay = min(RESOURCE_RETRY_MAX, 0.25 * 2**child.spawn_retries)
            child.spawn_retries += 1
            child.restart_at = now + delay
            code = errno.errorcode.get(exc.errno or 0, "?")
            self.log(
                f"cannot start {child.name} now: the supervisor is out of {short_of} ({code}); trying again in "
                f"{delay:g} s (not counted against {child.name}'s restarts)",
                "warning",
            )
            return
        child.spawn_retries = 0
        child.run += 1
        child.forget_run()
        child.pid = child.pgid = pid
        child.remains, child.killing = True, False
        child.started_at, child.start_deadline = now, now + child.spec.start_deadline
        child.next_up_probe = now
        self._track()
        where = ""
        if self.fx.applies_cpus and child.spec.cpus:
            where = f", CPUs {format_cpulist(child.spec.cpus)}"
        self.transition(child, ProcState.STARTING, f"pid {pid}: {' '.join(child.spec.argv)}{where}")

    def kill(self, child: Child) -> None:
        """Everything of the current run, once: its group and every descendant."""
        if child.pgid is not None and child.remains and not child.killing:
            child.killing = True
            self.fx.kill_tree(child.name, child.run, child.pgid)

    def request(self, child: Child, probe: Probe, timeout: float | None = None) -> None:
        """Send one probe of `probe` kind to `child` unless one is already on its way."""
        check = {Probe.LIVE: child.spec.live, Probe.READY: child.spec.ready, Probe.IDLE: child.spec.work,
                 Probe.STOP: child.spec.stop_request}.get(probe)  # fmt: skip
        checks = child.spec.up if probe is Probe.UP else ((check,) if check is not None else ())
        if not checks or probe in child.probing or child.pid is None:
            return
        child.probing.add(probe)
        self.fx.probe(child.name, child.run, probe, checks, timeout or self.settings.health_timeout)

    def _track(self) -> None:
        self.fx.track({c.name: c.pgid for c in self.children.values() if c.remains and c.pgid is not None})

    # --- states --------------------------------------------------------------------------

    def transition(self, child: Child, state: ProcState, reason: str) -> None:
        previous = child.state
        try:
            states.check(states.TRANSITIONS, previous, state)
        except states.IllegalTransition as exc:
            self._internal_error(f"{child.name}: {exc} ({reason})")
            return
        child.state, child.since, child.reason = state, self.fx.wall(), reason
        level = "info" if previous is ProcState.STOPPING else states.LEVELS.get(state, "info")
        self.log(f"{child.name}: {previous.value} -> {state.value}: {reason}", level)

    def set_phase(self, phase: Phase, reason: str) -> None:
        if phase is self.phase:
            return
        try:
            states.check(states.PHASE_TRANSITIONS, self.phase, phase)
        except states.IllegalTransition as exc:
            self._internal_error(f"service: {exc} ({reason})")
            return
        self.log(f"service: {self.phase.value} -> {phase.value}: {reason}", states.LEVELS.get(phase, "info"))
        self.phase, self.phase_since, self.phase_reason = phase, self.fx.now(), reason

    def _internal_error(self, message: str) -> None:
        self.internal_errors += 1
        self.log(f"internal error, refused: {message}", "error")
        if self.strict:
            raise states.IllegalTransition(message)

    def log(self, message: str, level: str = "info") -> None:
        self.fx.log(message, level)

    def finish(self) -> None:
        if self.phase is Phase.DRAINING:
            self.set_phase(Phase.STOPPED, "every process has stopped")
        self.finished = True
