"""The guardian (runtime/guardian.py) watched like a child: started again when it exits, told
every process group again, its state shown by /livez. Without it, a SIGKILL of the supervisor
would leave the Servers' workers running and holding NPU memory."""

from __future__ import annotations

from collections.abc import Callable

from supervisor_pd.runtime.effects import Effects

RETRY = 1.0


class Guardian:
    def __init__(self, fx: Effects, tell: Callable[[], None]) -> None:
        self.fx = fx
        self.tell = tell  # hands the current process groups to a new guardian
        self.pid: int | None = None
        self.started_at = 0.0
        self.next_start = 0.0
        self.restarts = 0
        self.last_exit: str | None = None
        self.begun = False  # asked to start at least once

    def due(self, now: float) -> bool:
        return self.pid is None and now >= self.next_start

    def start(self) -> None:
        self.begun = True
        now = self.fx.now()
        try:
            self.pid = self.fx.start_guardian()
        except OSError as exc:
            self.next_start = now + RETRY
            self.fx.log(f"cannot start the guardian: {exc.strerror or exc}; trying again in {RETRY:g} s")
            return
        self.started_at = now
        self.tell()

    def exited(self, how: str) -> None:
        self.pid, self.last_exit = None, how
        self.restarts += 1
        now = self.fx.now()
        # One that dies at once is not started again at once: no busy loop.
        self.next_start = now if now - self.started_at >= RETRY else now + RETRY
        self.fx.log(f"the guardian exited ({how}): starting a new one")
