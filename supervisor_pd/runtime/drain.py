"""The drain: stopping everything within the grace period, as a state machine of its own.

    settle         the HTTP port's requests in flight finish (the drain hooks), then the processes
                   that report work (`spec.work`) report none; up to half the grace period
    stop-requests  each process's own stop request (`spec.stop_request`: a Server's /stopService)
    term           SIGTERM group by group in reverse dependency order; each group gets its share of
                   the time left, so one process that ignores SIGTERM costs only its own share:
                   at the end of it that group is killed and the next one starts with its share
    final          SIGKILL whatever is left; done when nothing of any child remains

An escalation (the service failed) skips waiting for work and the stop requests.
"""

from __future__ import annotations

import signal
from enum import StrEnum
from typing import TYPE_CHECKING

from supervisor_pd.runtime.events import Answered, Probe
from supervisor_pd.runtime.states import FINAL, UP, ProcState

if TYPE_CHECKING:
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.engine import Engine

IDLE_POLL = 0.1
GROUP_GONE_LIMIT = 10.0


class Stage(StrEnum):
    SETTLE = "settle"
    STOP_REQUESTS = "stop-requests"
    TERM = "term"
    FINAL = "final"
    DONE = "done"


class Drainer:
    def __init__(self, engine: Engine, graceful: bool) -> None:
        self.engine = engine
        self.graceful = graceful
        now = engine.fx.now()
        grace = engine.settings.grace_seconds
        self.deadline = now + grace
        # Half the grace period for work in flight; the rest for the processes' own stop paths.
        self.settle_until = now + grace / 2
        self.stage = Stage.SETTLE
        self.hooks_done = False
        self.idle = not graceful
        self.idle_pending: set[str] = set()
        self.busy: dict[str, int] = {}
        self.next_idle = now
        self.reported_busy = False
        self.stop_pending: set[str] = set()
        self.stop_until = now
        self.groups = [list(group) for group in reversed(engine.levels)]
        self.current: list[str] = []
        self.group_until = now
        self.final_until: float | None = None
        engine.log(f"draining within {grace:g} s")
        engine.fx.run_hooks(self.settle_until)

    # --- progress ----------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        while True:
            before = self.stage
            if self.stage is Stage.SETTLE:
                self._settle(now)
            elif self.stage is Stage.STOP_REQUESTS:
                self.stop_pending = {name for name in self.stop_pending if self._child(name).pid is not None}
                if not self.stop_pending or now >= self.stop_until:
                    self.stage = Stage.TERM
            elif self.stage is Stage.TERM:
                self._term(now)
            elif self.stage is Stage.FINAL:
                self._final(now)
            if self.stage is before:
                return

    def moments(self) -> list[float]:
        """When advance() will have something to do; answers and exits move it on otherwise."""
        if self.stage is Stage.SETTLE:
            polling = self.hooks_done and not self.idle and not self.idle_pending
            return [self.settle_until, self.next_idle] if polling else [self.settle_until]
        if self.stage is Stage.STOP_REQUESTS:
            return [self.stop_until]
        if self.stage is Stage.TERM:
            return [self.group_until]
        if self.stage is Stage.FINAL and self.final_until is not None:
            return [self.final_until]
        return []

    def _settle(self, now: float) -> None:
        if now >= self.settle_until or (self.hooks_done and self.idle):
            self.stage = Stage.STOP_REQUESTS if self.graceful else Stage.TERM
            if self.graceful:
                self._ask_to_stop(now)
            return
        if not self.hooks_done or self.idle:
            return
        self.idle_pending = {name for name in self.idle_pending if self._child(name).pid is not None}
        if self.idle_pending or now < self.next_idle:
            return
        working = [c for c in self.engine.children.values() if c.state in UP and c.spec.work is not None]
        if not working:
            self.idle = True
            return
        self.busy = {}
        self.idle_pending = {child.name for child in working}
        for child in working:
            self.engine.request(child, Probe.IDLE)

    def _ask_to_stop(self, now: float) -> None:
        asked = [c for c in self.engine.children.values() if c.state in UP and c.spec.stop_request is not None]
        if not asked:
            return
        path = asked[0].spec.stop_request.path  # type: ignore[union-attr]
        self.engine.log(f"asking {len(asked)} process(es) to stop ({path})")
        budget = max(0.5, (self.deadline - now) / 2)
        self.stop_until = now + budget
        self.stop_pending = {child.name for child in asked}
        for child in asked:
            self.engine.request(child, Probe.STOP, timeout=budget)

    def _term(self, now: float) -> None:
        engine = self.engine
        if self.current:
            left = [self._child(name) for name in self.current if self._child(name).pid is not None]
            if left and now < self.group_until:
                return
            if left:
                names = ", ".join(child.name for child in left)
                engine.log(f"{names} still running at the end of its share of the grace period: SIGKILL")
                for child in left:
                    engine.kill(child)
            self.current = []
        while self.groups:
            group = [self._child(name) for name in self.groups.pop(0)]
            live = [child for child in group if child.pid is not None and child.pgid is not None]
            if not live:
                continue
            # Its share of what is left: the groups after it still get theirs.
            remaining = 1 + sum(1 for names in self.groups if any(self._child(n).pid is not None for n in names))
            share = max(0.0, self.deadline - now) / remaining
            engine.log(f"stopping {', '.join(c.name for c in live)} (SIGTERM, up to {share:.1f} s)")
            for child in live:
                if child.state is not ProcState.STOPPING:
                    engine.transition(child, ProcState.STOPPING, "draining")
                engine.fx.signal(child.pgid, signal.SIGTERM)  # type: ignore[arg-type]
            self.current = [child.name for child in live]
            self.group_until = now + share
            return
        self.stage = Stage.FINAL

    def _final(self, now: float) -> None:
        engine = self.engine
        if self.final_until is None:
            self.final_until = now + GROUP_GONE_LIMIT
            left = [c for c in engine.children.values() if c.pid is not None]
            if left:
                engine.log(f"grace period over: SIGKILL to {', '.join(c.name for c in left)}")
            for child in engine.children.values():
                engine.kill(child)
        for child in engine.children.values():
            if child.pid is None and child.state not in FINAL:
                engine.transition(child, ProcState.STOPPED, "stopped")
        if all(c.pid is None and not c.remains for c in engine.children.values()) or now >= self.final_until:
            self.stage = Stage.DONE
            engine.finish()

    def kill_everything(self) -> None:
        """A second signal: no more waiting."""
        self.stage = Stage.FINAL
        self.final_until = None
        self._final(self.engine.fx.now())

    # --- answers -----------------------------------------------------------------------------

    def answered(self, child: Child, event: Answered) -> None:
        engine, now = self.engine, self.engine.fx.now()
        if event.probe is Probe.IDLE and child.name in self.idle_pending:
            self.idle_pending.discard(child.name)
            self.busy[child.name] = engine.rules.busy(event.result) if event.result.ok else 0
            if not self.idle_pending:
                total = sum(self.busy.values())
                if total == 0:
                    self.idle = True
                else:
                    if not self.reported_busy:
                        engine.log(f"waiting for {total} request(s) in flight on the Servers")
                        self.reported_busy = True
                    self.next_idle = now + IDLE_POLL
        elif event.probe is Probe.STOP and child.name in self.stop_pending:
            self.stop_pending.discard(child.name)
            if not event.result.ok:
                engine.log(f"{child.name}: {event.result.detail}")
        self.advance(now)

    def _child(self, name: str) -> Child:
        return self.engine.children[name]
