import random

import pytest

from supervisor_pd.runtime.restart import Action, RestartPolicy, Run, consecutive_failures, decide

POLICY = RestartPolicy(backoff=1.0, factor=2.0, cap=10.0, jitter=0.0, stable_after=600.0, budget=4)


def runs(*lengths: float) -> tuple[Run, ...]:
    """Runs one after the other, each lasting the given seconds before it failed."""
    out, now = [], 0.0
    for length in lengths:
        out.append(Run(now, now + length))
        now += length + 1
    return tuple(out)


@pytest.mark.parametrize(
    ("history", "failures", "delay"),
    [
        (runs(5), 1, 1.0),
        (runs(5, 5), 2, 2.0),
        (runs(5, 5, 5), 3, 4.0),
        (runs(5, 5, 5, 5), 4, 8.0),
        (runs(700, 5), 2, 2.0),  # the stable run counts as the first failure of a new series
        (runs(5, 5, 5, 700), 1, 1.0),  # a stable run resets the count
    ],
)
def test_exponential_backoff_reset_after_a_stable_run(history: tuple[Run, ...], failures: int, delay: float) -> None:
    decision = decide(POLICY, history)
    assert decision.action is Action.RESTART
    assert (decision.failures, decision.delay) == (failures, delay)


def test_the_delay_is_capped() -> None:
    policy = RestartPolicy(backoff=1.0, cap=10.0, jitter=0.0, budget=100)
    assert decide(policy, runs(*[5] * 20)).delay == 10.0


def test_more_failures_than_the_budget_escalate() -> None:
    decision = decide(POLICY, runs(5, 5, 5, 5, 5))
    assert decision.action is Action.ESCALATE
    assert "budget of 4" in decision.reason


def test_a_budget_of_zero_escalates_the_first_failure() -> None:
    assert decide(RestartPolicy(budget=0), runs(5)).action is Action.ESCALATE


def test_jitter_stays_within_bounds_and_under_the_cap() -> None:
    policy = RestartPolicy(backoff=4.0, cap=5.0, jitter=0.2, budget=10)
    rng = random.Random(7)
    delays = [decide(policy, runs(1), rng).delay for _ in range(200)]
    assert min(delays) >= 3.2 and max(delays) <= 4.8
    assert len(set(delays)) > 100
    capped = [decide(policy, runs(1, 1), rng).delay for _ in range(50)]
    assert max(capped) <= 5.0


def test_consecutive_failures() -> None:
    assert consecutive_failures(POLICY, ()) == 0
    assert consecutive_failures(POLICY, runs(5, 700, 5, 5)) == 3
