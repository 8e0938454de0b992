"""Process states and the service's phase, as enums; every change is logged with its reason."""

from __future__ import annotations

from enum import StrEnum


class ProcState(StrEnum):
    PENDING = "pending"  # not started yet (waiting for its dependencies)
    STARTING = "starting"  # spawned, not answering yet
    READY = "ready"  # answering its health endpoints
    UNHEALTHY = "unhealthy"  # failing liveness checks, not yet restarted
    BACKOFF = "backoff"  # exited or killed; waiting before the next start
    FAILED = "failed"  # out of restart budget
    STOPPING = "stopping"  # asked to stop
    STOPPED = "stopped"  # stopped on purpose

    @property
    def running(self) -> bool:
        return self in (ProcState.STARTING, ProcState.READY, ProcState.UNHEALTHY, ProcState.STOPPING)


class Phase(StrEnum):
    STARTING = "starting"  # bringing the service up the first time
    READY = "ready"  # the Coordinator is ready and every Server is role-ready
    DEGRADED = "degraded"  # was ready once, is not now
    DRAINING = "draining"  # stopping on request
    STOPPED = "stopped"
    FAILED = "failed"  # escalated: stopping everything to exit non-zero
