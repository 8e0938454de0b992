"""Health: which probes are due, what their answers mean, and whether the service is ready.

Readiness is a fact with a date. A process's readiness counts only when it was observed during
its current run (answers from an earlier run are dropped by the engine) and nothing since has
disrupted it: any exit, kill or restart clears it, and clears the readiness of every process
that observes it (the Coordinator's readiness reflects the Servers'), before the event is
otherwise handled. A process that observes others counts only when its readiness was observed
after each of theirs became ready, so the Coordinator's "ready" from before a Server came back
is never taken as a statement about that Server. A Server with a bad chip or link
(runtime/npuwatch.py) does not count at all, whatever it answers.

Probes run in rounds: first every process that observes nothing, then, once they have all
answered, the observers. Rounds come every health interval while the service is ready and
every FAST_INTERVAL at most while it is not, because the time back to ready is what an operator
waits on. A readiness answer of 200 also proves the process alive; only the others get a
separate liveness request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from supervisor_pd.runtime.events import Answered, Probe
from supervisor_pd.runtime.npuwatch import NpuWatch
from supervisor_pd.runtime.serving import Progress, duration
from supervisor_pd.runtime.states import STOPPING_PHASES, UP, Phase, ProcState, RestartCause, Serving

if TYPE_CHECKING:
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.engine import Engine

UP_POLL = 0.05
FAST_INTERVAL = 0.5
# After the service was ready once (degraded), a process that is up but not ready is asked this
# often, apart from the rounds: how soon /readyz follows a recovery depends on it. And when every
# Server is ready and only the Coordinator is not (the Controller is about to refresh it), the
# Coordinator alone is asked this often: it is the last step back to ready.
CHASE_POLL = 0.05
LAST_STEP_POLL = 0.05


@dataclass
class Round:
    started: float
    pending: set[str]
    then: list[str] = field(default_factory=list)


class Health:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.round: Round | None = None
        self.next_round = engine.started
        self.next_observer = engine.started
        self.next_chase: dict[str, float] = {}
        children = engine.children
        self.serving = [name for name, child in children.items() if child.spec.serving]
        self.observers: dict[str, list[str]] = {name: [] for name in children}
        for name, child in children.items():
            for observed in child.spec.observes:
                self.observers[observed].append(name)
        # The Servers' chips and links: read periodically, a fault keeps a Server from counting.
        self.npu = NpuWatch(engine)
        # Each process's serving state, and the progress lines while one loads.
        self.progress = Progress(engine)

    # --- what is due -----------------------------------------------------------------------

    def schedule(self, now: float) -> None:
        engine = self.engine
        interval = engine.settings.health_interval
        for child in engine.children.values():
            if child.state is ProcState.STARTING and now >= child.next_up_probe and Probe.UP not in child.probing:
                child.next_up_probe = now + UP_POLL
                engine.request(child, Probe.UP)
        if self.round is not None and now >= self.round.started + 2 * engine.settings.health_timeout + 1:
            self.round = None  # an answer was lost with its process; the next round asks again
        if self.round is None and now >= self.next_round:
            self._begin_round(now)
        elif self.round is None:
            self._chase(now)
            self._last_step(now)
        for child in engine.children.values():
            if child.state not in UP or now < child.next_live:
                continue
            if not self._live_due_possible(child):
                continue  # one on its way, or a ready process about to prove it is alive
            child.next_live = now + interval
            engine.request(child, Probe.LIVE)
        self.npu.schedule(now)
        self.progress.tick(now)

    def _chased(self) -> list[Child]:
        engine = self.engine
        if engine.phase is not Phase.DEGRADED:
            return []
        return [
            child
            for child in engine.children.values()
            if child.state in UP and child.spec.ready is not None and not child.spec.observes
            and child.spec.serving and child.readiness.last is None
        ]  # fmt: skip

    def _chase(self, now: float) -> None:
        """Ask again, often, the processes a recovery waits for."""
        for child in self._chased():
            if now >= self.next_chase.get(child.name, 0.0):
                self.next_chase[child.name] = now + CHASE_POLL
                self.engine.request(child, Probe.READY)

    def _last_step(self, now: float) -> None:
        """Ask the observers again, alone, when only they keep the service from being ready."""
        if now < self.next_observer:
            return
        waiting = self._only_observers_missing()
        if waiting:
            self.next_observer = now + LAST_STEP_POLL
            for child in waiting:
                self.engine.request(child, Probe.READY)

    def _only_observers_missing(self) -> list[Child]:
        engine = self.engine
        if engine.phase is Phase.READY:
            return []
        waiting = [engine.children[name] for name in self.serving if not self.counts(engine.children[name])]
        if waiting and all(child.spec.observes and child.state in UP for child in waiting):
            return waiting
        return []

    def moments(self) -> list[float]:
        """When schedule() will have something to do: never for a probe already on its way."""
        engine = self.engine
        if self.round is None:
            times = [self.next_round]
            if self._only_observers_missing():
                times.append(self.next_observer)
            times += [self.next_chase.get(c.name, 0.0) for c in self._chased() if Probe.READY not in c.probing]
        else:
            times = [self.round.started + 2 * engine.settings.health_timeout + 1]
        for child in engine.children.values():
            if child.state is ProcState.STARTING and Probe.UP not in child.probing:
                times.append(child.next_up_probe)
            elif child.state in UP and self._live_due_possible(child):
                times.append(child.next_live)
        return times + self.npu.moments() + self.progress.moments()

    @staticmethod
    def _live_due_possible(child: Child) -> bool:
        if Probe.LIVE in child.probing:
            return False
        return not (Probe.READY in child.probing and child.readiness.last is not None)

    def _begin_round(self, now: float) -> None:
        engine = self.engine
        asked = [c for c in engine.children.values() if c.state in UP and c.spec.ready is not None]
        first = [c for c in asked if not c.spec.observes]
        self.round = Round(now, {c.name for c in first}, [c.name for c in asked if c.spec.observes])
        for child in first:
            engine.request(child, Probe.READY)
        if not first:
            self._second_stage()
        fast = engine.phase is not Phase.READY
        interval = engine.settings.health_interval
        self.next_round = now + (min(interval, FAST_INTERVAL) if fast else interval)

    def _second_stage(self) -> None:
        assert self.round is not None
        for name in self.round.then:
            child = self.engine.children[name]
            if child.state in UP:
                self.engine.request(child, Probe.READY)
        self.round = None

    def settle_round(self, child: Child, event: Answered) -> None:
        """Every readiness answer, current or stale, moves the round on."""
        if self.round is not None and event.probe is Probe.READY and child.name in self.round.pending:
            self.round.pending.discard(child.name)
            if not self.round.pending:
                self._second_stage()

    def soon(self) -> None:
        """Look at readiness at the next tick (a process just came up)."""
        self.next_round = min(self.next_round, self.engine.fx.now())

    # --- what answers mean -------------------------------------------------------------------

    def answered(self, child: Child, event: Answered) -> None:
        engine, result = self.engine, event.result
        if event.probe is Probe.UP:
            if child.state is ProcState.STARTING and result.ok:
                child.ever_up = True
                child.failures = 0
                child.next_live = engine.fx.now() + engine.settings.health_interval
                endpoints = " and ".join(check.path for check in child.spec.up)
                engine.transition(child, ProcState.RUNNING, f"answers {endpoints}")
                if child.npu_fault is not None:
                    engine.transition(child, ProcState.UNHEALTHY, child.npu_fault)
                self.soon()
            return
        if child.state not in UP:
            return
        if event.probe is Probe.READY:
            child.readiness.observe(result.ok, event.sent)
            if result.ok:
                child.ready_in_run = True
                self._alive(child, event)
        elif event.probe is Probe.LIVE:
            if result.ok:
                self._alive(child, event)
            else:
                self._dead(child, event)

    def _alive(self, child: Child, event: Answered) -> None:
        engine = self.engine
        child.health, child.health_wall = event.result, engine.fx.wall()
        child.failures = 0
        # Past the next round's answer: a process that stays ready needs no liveness request.
        settings = engine.settings
        child.next_live = max(child.next_live, event.sent + settings.health_interval + settings.health_timeout)
        if child.state is ProcState.UNHEALTHY and child.npu_fault is None:
            engine.transition(child, ProcState.RUNNING, "liveness recovered")

    def _dead(self, child: Child, event: Answered) -> None:
        engine = self.engine
        child.health, child.health_wall = event.result, engine.fx.wall()
        child.failures += 1
        limit = engine.settings.liveness_failures
        detail = event.result.detail
        if child.failures >= limit:
            engine.fail(
                child, f"{child.failures} liveness checks failed in a row (last: {detail})", RestartCause.LIVENESS
            )
        elif child.state is ProcState.RUNNING:
            engine.transition(child, ProcState.UNHEALTHY, f"liveness check {child.failures}/{limit} failed: {detail}")

    # --- readiness as facts ------------------------------------------------------------------

    def disrupted(self, child: Child) -> None:
        """`child` exited, was killed or is restarting: its readiness and its observers' are void."""
        child.readiness.clear()
        for name in self.observers[child.name]:
            self.engine.children[name].readiness.clear()

    def counts(self, child: Child) -> bool:
        last = child.readiness.last
        if child.state not in UP or last is None or child.npu_fault is not None:
            return False
        for name in child.spec.observes:
            since = self.engine.children[name].readiness.since
            if since is None or since > last:
                return False
        return True

    def why_not(self, child: Child) -> str:
        return f"{child.name} ({self.not_ready_because(child)})"

    def not_ready_because(self, child: Child) -> str:
        if child.npu_fault is not None:
            return child.npu_fault
        if child.serving is Serving.LOADING and child.spec.ready is not None:
            return f"loading {duration(self.progress.loading_for(child))}"
        if child.state not in UP:
            return child.state.value
        if child.serving is Serving.SWITCHING:
            return "switching role"
        if child.readiness.last is None:
            return "not ready"
        return "not yet seen ready since the others came back"

    def service_ready(self) -> bool:
        return all(self.counts(self.engine.children[name]) for name in self.serving)

    def judge(self) -> None:
        """The service's phase follows the facts in the same loop turn as they change."""
        engine = self.engine
        self.progress.update()
        if engine.phase in STOPPING_PHASES:
            return
        missing = [engine.children[name] for name in self.serving if not self.counts(engine.children[name])]
        if not missing:
            if engine.phase in (Phase.STARTING, Phase.DEGRADED):
                took = engine.fx.now() - engine.started
                first = not engine.ever_ready
                note = f"service ready after {took:.1f} s" if first else "service ready again"
                engine.ever_ready = True
                engine.set_phase(Phase.READY, "every serving process is ready, as observed since its last start")
                engine.log(note)
                for line in engine.first_ready_lines if first else ():
                    engine.log(line)
            return
        reason = "not ready: " + ", ".join(self.why_not(child) for child in missing)
        if engine.phase is Phase.READY:
            engine.set_phase(Phase.DEGRADED, reason)
        else:
            engine.phase_reason = reason
