"""Process states and the service's phase as data: named sets and the legal moves between them.

Every change of a process's state or the service's phase goes through `check()` against the
tables below, so a move the design does not allow is found the moment it happens (the engine
raises in tests and logs an internal error in production) instead of showing up later as a
status that does not match the processes.
"""

from __future__ import annotations

from enum import StrEnum


class ProcState(StrEnum):
    PENDING = "pending"  # not started yet (waiting for its dependencies)
    STARTING = "starting"  # spawned, not answering its management endpoints yet
    RUNNING = "running"  # answers its management endpoints (not the same as ready to serve)
    UNHEALTHY = "unhealthy"  # failing liveness checks, not yet restarted
    BACKOFF = "backoff"  # exited or killed; waiting before the next start
    STOPPING = "stopping"  # asked to stop (a drain, or a restart that waits for the exit)
    STOPPED = "stopped"  # stopped on purpose: by a drain (final), or by an operator until a start
    FAILED = "failed"  # out of restart budget; final


class Phase(StrEnum):
    STARTING = "starting"  # bringing the service up the first time
    READY = "ready"  # every serving process's readiness is observed and current
    DEGRADED = "degraded"  # was ready once, is not now
    DRAINING = "draining"  # stopping on request
    STOPPED = "stopped"  # final
    FAILED = "failed"  # escalated: stopping everything to exit non-zero; final


class Serving(StrEnum):
    """What a process is to the service, beside its process state: a Server can be `running`
    (answers its management endpoints) for minutes while its model loads (`loading`)."""

    DOWN = "down"  # no run alive, or one told to stop
    LOADING = "loading"  # alive, not yet ready in this run (a Server loads its model, waits for a role)
    SWITCHING = "switching"  # a Server whose roleStatus says its role is changing
    ROLE_READY = "role-ready"  # a Server whose readiness counts
    READY = "ready"  # the Coordinator's readiness counts; the Controller (no readiness check) is up
    NOT_READY = "not-ready"  # alive and was ready in this run, is not now
    NPU_FAULT = "npu-fault"  # a Server on a bad chip or link (runtime/npuwatch.py)


class RestartCause(StrEnum):
    """Why a process was restarted: a crash loop and an operator's restarts are different stories."""

    CRASH = "crash"  # exited on its own, or could not be started
    LIVENESS = "liveness"  # failed its liveness checks or its start deadline, or the Controller stalled
    OPERATOR = "operator"  # asked for through the API or the command line
    DEPENDENCY = "dependency"  # MindIE's rules dragged it along with another process (runtime/mindie.py)
    NPU_FAULT = "npu-fault"  # its chip or link went bad (SUPERVISOR_PD_NPU_FAULT=restart)
    TLS_RENEWAL = "tls-renewal"  # it had to load a renewed certificate (api/renewal.py)


# The log level of a move into these (a move out of `stopping` was asked for: info).
LEVELS: dict[StrEnum, str] = {
    ProcState.UNHEALTHY: "warning",
    ProcState.BACKOFF: "warning",
    ProcState.FAILED: "error",
    Phase.DEGRADED: "warning",
    Phase.FAILED: "error",
}

# A process of the current run may exist.
ALIVE = frozenset({ProcState.STARTING, ProcState.RUNNING, ProcState.UNHEALTHY, ProcState.STOPPING})
# Answered its management endpoints in this run and was not told to stop.
UP = frozenset({ProcState.RUNNING, ProcState.UNHEALTHY})
# May be started (once its delay is over and its dependencies allow).
WAITING = frozenset({ProcState.PENDING, ProcState.BACKOFF})
# Nothing more happens to it while the service stops. An operator's `start` is the one way out
# of `stopped` (runtime/operator.py), and it is refused once the service is stopping.
FINAL = frozenset({ProcState.STOPPED, ProcState.FAILED})
# The service is on its way out: nothing is started, failures are not restarted.
STOPPING_PHASES = frozenset({Phase.DRAINING, Phase.FAILED, Phase.STOPPED})

_S = ProcState
TRANSITIONS: dict[ProcState, frozenset[ProcState]] = {
    _S.PENDING: frozenset({_S.STARTING, _S.BACKOFF, _S.FAILED, _S.STOPPED}),
    _S.STARTING: frozenset({_S.RUNNING, _S.BACKOFF, _S.FAILED, _S.STOPPING, _S.STOPPED}),
    _S.RUNNING: frozenset({_S.UNHEALTHY, _S.BACKOFF, _S.FAILED, _S.STOPPING, _S.STOPPED}),
    _S.UNHEALTHY: frozenset({_S.RUNNING, _S.BACKOFF, _S.FAILED, _S.STOPPING, _S.STOPPED}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.BACKOFF, _S.FAILED, _S.STOPPED}),
    _S.STOPPING: frozenset({_S.BACKOFF, _S.STOPPED}),
    _S.STOPPED: frozenset({_S.PENDING}),  # an operator's start: through the gates of any start
    _S.FAILED: frozenset(),
}

_P = Phase
PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    _P.STARTING: frozenset({_P.READY, _P.DRAINING, _P.FAILED}),
    _P.READY: frozenset({_P.DEGRADED, _P.DRAINING, _P.FAILED}),
    _P.DEGRADED: frozenset({_P.READY, _P.DRAINING, _P.FAILED}),
    _P.DRAINING: frozenset({_P.STOPPED}),
    _P.STOPPED: frozenset(),
    _P.FAILED: frozenset(),
}


class IllegalTransition(AssertionError):
    """A move the tables above do not allow: a bug in supervisor_pd, never a user's fault."""


def check(
    table: dict[ProcState, frozenset[ProcState]] | dict[Phase, frozenset[Phase]], old: StrEnum, new: StrEnum
) -> None:
    allowed = table[old]  # type: ignore[index]
    if new not in allowed:
        names = ", ".join(sorted(state.value for state in allowed)) or "nothing (final)"
        raise IllegalTransition(f"{old.value} -> {new.value} is not allowed; from {old.value}: {names}")
