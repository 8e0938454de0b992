"""What the engine reacts to: facts from the OS and the children, and commands from outside.

Facts carry the run they belong to (a child's `run` counts its starts), so an answer from a
process that has since been replaced is recognised and dropped instead of being believed.
Commands are the only way the HTTP layer and signal handlers act on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from supervisor_pd.runtime.npucollect import ChipResult, ToolFailure
from supervisor_pd.runtime.probes import Result


class Probe(StrEnum):
    UP = "up"  # a starting process answers its management endpoints
    LIVE = "live"  # liveness
    READY = "ready"  # readiness to serve
    IDLE = "idle"  # work in flight, while draining
    STOP = "stop"  # the process's own stop request, while draining


# --- facts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exited:
    """A process we reaped: a child, the guardian, or an orphan handed to us."""

    pid: int
    code: int


@dataclass(frozen=True)
class Answered:
    """A probe's result; `sent` is when the request went out (what a readiness fact is dated by)."""

    name: str
    run: int
    probe: Probe
    result: Result
    sent: float


@dataclass(frozen=True)
class GroupGone:
    """Nothing of run `run` of `name` is left: its process group and every descendant are gone."""

    name: str
    run: int


@dataclass(frozen=True)
class NpuReport:
    """One NPU and link health collection (runtime/npucollect.py), begun at `started`."""

    started: float
    finished: float
    chips: tuple[ChipResult, ...]
    failures: tuple[ToolFailure, ...]
    runs: int


@dataclass(frozen=True)
class HooksDone:
    """The drain hooks (the HTTP port's in-flight requests) have finished or timed out."""


# --- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """A signal to stop (SIGTERM, SIGINT, SIGHUP), received by the supervisor."""

    signum: int


@dataclass(frozen=True)
class Drain:
    """Drain and stop, asked for through the control API; `source` says where from."""

    source: str


@dataclass(frozen=True)
class Restart:
    """Restart one process gracefully, asked for through the control API (or a renewal)."""

    name: str
    cause: str = "operator"  # a RestartCause value


@dataclass(frozen=True)
class Stop:
    """Stop one process and keep it stopped until a Start (supervisorctl's stop), asked for
    through the control API (runtime/operator.py)."""

    name: str


@dataclass(frozen=True)
class Start:
    """Start a process an operator stopped, through the gates of any start (runtime/operator.py)."""

    name: str


@dataclass(frozen=True)
class RollingRestart:
    """Restart the Servers one at a time, each back before the next (runtime/rolling.py); `role`
    restricts it to the prefill or the decode Servers; `allow_outage` waives the refusals of a roll
    that cannot keep the service up; `token` names this request in the roll's view."""

    token: str
    role: str | None = None
    allow_outage: bool = False


Command = Signal | Drain | Restart | Stop | Start | RollingRestart
Event = Exited | Answered | GroupGone | NpuReport | HooksDone | Command
