"""One supervised child: its spec and everything the loop knows about its current run."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field

import anyio

from supervisor_pd.runtime.probes import Result
from supervisor_pd.runtime.restart import Run
from supervisor_pd.runtime.spec import Kind, ProcessSpec
from supervisor_pd.runtime.states import ProcState


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"


@dataclass
class Child:
    spec: ProcessSpec
    state: ProcState = ProcState.PENDING
    since: float = 0.0
    reason: str = "not started yet"
    popen: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    pgid: int | None = None
    started_at: float | None = None
    start_deadline: float | None = None
    restart_at: float | None = None
    group_alive: bool = False
    restart_when_stopped: bool = False
    runs: list[Run] = field(default_factory=list)
    restarts: int = 0
    last_exit: str | None = None
    failures: int = 0
    health: Result | None = None
    health_at: float | None = None
    health_wall: float | None = None
    ready_once: bool = False
    next_live: float = 0.0
    role_status: str | None = None
    current_role: str | None = None
    exited: anyio.Event | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    @property
    def startable(self) -> bool:
        """Not running, no process of its group left, and any restart delay over."""
        return self.state in (ProcState.PENDING, ProcState.BACKOFF) and not self.group_alive and self.pid is None
