"""Errors that reach the user, and the exit codes they map to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of `supervisor-pd`. Never use bare integers."""

    OK = 0  # a requested stop
    FAILURE = 1  # an unexpected error in supervisor_pd itself
    BAD_INPUT = 2  # a bad config, setting or host fact: nothing was started
    BUDGET_EXHAUSTED = 3  # a process failed more often in a row than the restart budget allows
    STARTUP_DEADLINE = 4  # the service was not ready within SUPERVISOR_PD_READY_SECONDS


class SupervisorPdError(Exception):
    """Base for errors reported to the user as one line, without a traceback."""

    exit_code: ExitCode = ExitCode.FAILURE


class InputError(SupervisorPdError):
    """A bad input: a file, field, flag, variable or host fact that cannot be used.

    `where` names the thing (``config.json: BackendConfig.npuDeviceIds``,
    ``MINDIE_MS_P_RATE``, ``--output``); `problem` says what is wrong and what is allowed.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")
