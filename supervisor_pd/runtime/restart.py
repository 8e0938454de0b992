"""Where a restart is decided: a pure function of (policy, history, now).

Exponential backoff with jitter and a cap; a run that stayed up for the stable period resets the
count; more consecutive failures than the budget escalates (the supervisor stops everything and
exits non-zero so the orchestrator restarts the pod).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    RESTART = "restart"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class RestartPolicy:
    backoff: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.2
    stable_after: float = 600.0
    budget: int = 5


@dataclass(frozen=True)
class Run:
    """One run of a process: when it started and when it failed."""

    started: float
    failed: float


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float
    failures: int
    reason: str


def consecutive_failures(policy: RestartPolicy, history: tuple[Run, ...]) -> int:
    """Failures in a row: a run that stayed up for the stable period starts a new count."""
    count = 0
    for run in reversed(history):
        count += 1
        if run.failed - run.started >= policy.stable_after:
            break
    return count


def decide(policy: RestartPolicy, history: tuple[Run, ...], rng: random.Random | None = None) -> Decision:
    """What to do after the latest failure in `history`."""
    failures = consecutive_failures(policy, history)
    if failures > policy.budget:
        return Decision(
            Action.ESCALATE, 0.0, failures, f"{failures} failures in a row, more than the budget of {policy.budget}"
        )
    base = min(policy.cap, policy.backoff * policy.factor ** max(0, failures - 1))
    spread = (rng or random).uniform(-policy.jitter, policy.jitter) if policy.jitter else 0.0
    delay = max(0.0, min(policy.cap, base * (1 + spread)))
    return Decision(Action.RESTART, delay, failures, f"failure {failures} of {policy.budget} allowed in a row")
