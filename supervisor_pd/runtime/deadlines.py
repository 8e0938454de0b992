"""Deadlines the engine keeps: a start that is not answered in time fails the process, a graceful
stop that is not over in time becomes a SIGKILL, and a service not ready in time is given up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor_pd.errors import ExitCode
from supervisor_pd.runtime.states import STOPPING_PHASES, Phase, ProcState, RestartCause

if TYPE_CHECKING:
    from supervisor_pd.runtime.engine import Engine


def check_deadlines(engine: Engine, now: float) -> None:
    if engine.phase in STOPPING_PHASES:
        return
    for child in engine.children.values():
        if child.state is ProcState.STARTING and child.start_deadline is not None and now > child.start_deadline:
            endpoints = " and ".join(check.path for check in child.spec.up)
            engine.fail(
                child, f"did not answer {endpoints} within {child.spec.start_deadline:g} s", RestartCause.LIVENESS
            )
        elif child.state is ProcState.STOPPING and child.stop_deadline is not None and now >= child.stop_deadline:
            child.stop_deadline = None
            engine.log(
                f"{child.name} still running {engine.settings.stop_seconds:g} s after SIGTERM: SIGKILL", "warning"
            )
            engine.kill(child)
    if (
        engine.phase is Phase.STARTING
        and not engine.ever_ready
        and now - engine.started > engine.settings.ready_seconds
    ):
        engine.escalate(
            ExitCode.STARTUP_DEADLINE, f"the service was not ready within {engine.settings.ready_seconds:g} s"
        )
