"""An operator's stop, start and rolling restart, driven through the engine with the fake effects.

The scenarios in OPERATOR_SCENARIOS also run in test_engine.py's check that every legal move of
the state tables is taken by some scenario (`stopped -> pending` is only taken here).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from supervisor_pd.runtime.events import RollingRestart, Start, Stop
from supervisor_pd.runtime.rolling import ServerFact, rolling_refusal
from supervisor_pd.runtime.snapshot import snapshot
from supervisor_pd.runtime.states import Phase, ProcState, RestartCause
from tests.unit.runtime.fakes import Stack

S = ProcState
OPERATOR_SCENARIOS: list[Callable[[], object]] = []


def scenario(function: Callable[[], object]) -> Callable[[], object]:
    OPERATOR_SCENARIOS.append(function)
    return function


def stop(stack: Stack, name: str) -> None:
    stack.post(Stop(name))


def start(stack: Stack, name: str) -> None:
    stack.post(Start(name))


def back(stack: Stack, name: str) -> None:
    """What was killed is gone; it starts, comes up and the service is judged ready again."""
    stack.gone(name)
    assert stack.state(name) is S.STARTING
    stack.up(name)
    stack.readiness_round()


def refused(stack: Stack, what: str) -> str:
    lines = [line for line in stack.fx.logs if line.startswith(what)]
    assert lines, stack.fx.logs[-5:]
    return lines[-1]


# --- stop and start ---------------------------------------------------------------------------


@scenario
def test_a_stopped_server_stays_stopped_and_the_service_is_not_ready_until_it_is_started() -> None:
    stack = Stack(stop_seconds=10.0)
    stack.bring_up()
    pid = stack.child("server-2").pid
    stop(stack, "server-2")
    assert stack.state("server-2") is S.STOPPING
    assert ("signal", pid, signal.SIGTERM) in stack.fx.calls
    assert stack.engine.phase is Phase.DEGRADED  # its readiness went with the request
    stack.exit("server-2", code=-signal.SIGTERM)
    stack.gone("server-2")
    assert stack.state("server-2") is S.STOPPED
    assert stack.child("server-2").last_exit == "stopped through the API (killed by SIGTERM)"
    spawned = len(stack.spawned())
    stack.run_for(120)
    assert stack.state("server-2") is S.STOPPED  # never restarted
    assert len(stack.spawned()) == spawned
    assert stack.engine.phase is Phase.DEGRADED and "server-2 (stopped)" in stack.engine.phase_reason
    assert stack.child("server-2").restarts == 0  # a stop is not a restart, nor a failure
    start(stack, "server-2")
    back(stack, "server-2")
    assert stack.child("server-2").pid not in (None, pid)
    assert stack.engine.phase is Phase.READY
    assert stack.child("server-2").history == []


@scenario
def test_a_stop_is_refused_before_the_service_was_ever_ready() -> None:
    stack = Stack()
    stack.tick()
    stop(stack, "server-1")
    assert stack.state("server-1") is S.STARTING
    assert "all or nothing" in refused(stack, "stop of server-1 not done")


@scenario
def test_a_process_waiting_to_restart_is_stopped_at_once_and_never_started() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("server-3")
    assert stack.state("server-3") is S.BACKOFF
    stop(stack, "server-3")
    assert stack.state("server-3") is S.STOPPED
    stack.gone("server-3")
    stack.run_for(60)
    assert stack.spawned().count("server-3") == 1


@scenario
def test_a_restart_under_way_ends_in_the_stop() -> None:
    stack = Stack()
    stack.bring_up()
    stack.restart("server-1")
    stop(stack, "server-1")
    stack.exit("server-1", code=-signal.SIGABRT)
    stack.gone("server-1")
    assert stack.state("server-1") is S.STOPPED
    assert stack.spawned().count("server-1") == 1


@scenario
def test_a_stop_that_sigterm_does_not_end_becomes_a_sigkill() -> None:
    stack = Stack(stop_seconds=5.0)
    stack.bring_up()
    stop(stack, "coordinator")
    stack.advance(4)
    assert "coordinator" not in stack.killed()
    stack.advance(2)
    assert "coordinator" in stack.killed()
    stack.exit("coordinator")
    assert stack.state("coordinator") is S.STOPPED
    assert stack.engine.phase is Phase.DEGRADED


def test_start_is_refused_for_a_running_process_and_while_draining() -> None:
    stack = Stack()
    stack.bring_up()
    start(stack, "server-1")
    assert "start brings back a stopped process" in refused(stack, "start of server-1 not done")
    stop(stack, "server-4")
    stack.exit("server-4")
    stack.drain()
    start(stack, "server-4")
    assert stack.state("server-4") is S.STOPPED
    assert "the service is draining" in refused(stack, "start of server-4 not done")


@scenario
def test_a_stopped_process_is_left_alone_by_the_drain() -> None:
    stack = Stack()
    stack.bring_up()
    stop(stack, "server-4")
    stack.exit("server-4")
    stack.gone("server-4")
    stack.signal()
    stack.hooks_done()
    stack.run_for(60)
    for name in ("controller", "coordinator", *stack.servers):
        if stack.child(name).pid is not None:
            stack.exit(name)
            stack.gone(name)
    stack.run_for(15)
    assert stack.engine.finished and stack.engine.phase is Phase.STOPPED
    assert stack.engine.internal_errors == 0


def test_a_controller_started_without_its_recovery_file_takes_the_servers_with_roles_along() -> None:
    stack = Stack()
    stack.bring_up()
    stop(stack, "controller")
    stack.exit("controller")
    stack.gone("controller")
    # Stopped, it drags nothing along: the Servers keep their roles and keep serving.
    assert all(stack.state(name) is S.RUNNING for name in stack.servers)
    start(stack, "controller")
    # Started with no file to recover from: as after its crash, the Servers return without a role.
    assert all(stack.state(name) is S.STOPPING for name in stack.servers)
    assert stack.child("server-1").stop_cause is RestartCause.DEPENDENCY


def test_a_controller_started_with_its_recovery_file_starts_alone() -> None:
    stack = Stack()
    stack.bring_up()
    controller = stack.child("controller")
    stack.fx.files.add(controller.spec.cwd / stack.engine.rules.recovery_file)
    stop(stack, "controller")
    stack.exit("controller")
    stack.gone("controller")
    start(stack, "controller")
    assert stack.state("controller") is S.STARTING
    assert all(stack.state(name) is S.RUNNING for name in stack.servers)


# --- the rolling restart ----------------------------------------------------------------------


def roll(stack: Stack, role: str | None = None, allow_outage: bool = False) -> None:
    stack.post(RollingRestart("t1", role, allow_outage))


def down(stack: Stack) -> list[str]:
    return [name for name in stack.servers if stack.state(name) is not S.RUNNING]


@scenario
def test_a_roll_of_the_prefill_servers_restarts_one_at_a_time_each_back_before_the_next() -> None:
    stack = Stack()
    stack.bring_up()
    pids = {name: stack.child(name).pid for name in stack.servers}
    roll(stack, role="prefill")
    for name in ("server-1", "server-2"):
        assert down(stack) == [name]
        assert stack.state(name) is S.STOPPING
        stack.exit(name, code=-signal.SIGABRT)
        assert down(stack) == [name]  # the next waits
        back(stack, name)
        assert stack.child(name).pid != pids[name]
        assert stack.child(name).restart_causes == {"operator": 1}
    view = snapshot(stack.engine, 0.0).rolling
    assert view is not None and view.state == "done" and view.done == ("server-1", "server-2")
    assert [stack.child(name).pid for name in ("server-3", "server-4")] == [pids["server-3"], pids["server-4"]]
    assert stack.engine.phase is Phase.READY


def test_a_roll_with_an_outage_allowed_takes_every_server_prefill_first() -> None:
    stack = Stack()
    stack.bring_up()
    roll(stack, allow_outage=True)
    order = []
    for _ in stack.servers:
        (name,) = down(stack)
        order.append(name)
        stack.exit(name, code=-signal.SIGABRT)
        back(stack, name)
    assert order == ["server-1", "server-2", "server-3", "server-4"]
    assert snapshot(stack.engine, 0.0).rolling.state == "done"


def test_a_roll_stops_when_a_restarted_server_fails_again() -> None:
    stack = Stack()
    stack.bring_up()
    roll(stack, role="prefill")
    stack.exit("server-1", code=-signal.SIGABRT)
    stack.gone("server-1")
    stack.up("server-1")
    stack.exit("server-1", code=1)  # crashes while it loads
    view = snapshot(stack.engine, 0.0).rolling
    assert view is not None and view.state == "failed"
    assert view.reason.startswith("server-1 failed after its restart (exit code 1)")
    assert stack.state("server-2") is S.RUNNING  # the rest is left alone


def test_a_roll_is_refused_when_the_engine_gets_it_and_says_why() -> None:
    stack = Stack()
    stack.tick()
    roll(stack, role="prefill")
    view = snapshot(stack.engine, 0.0).rolling
    assert view is not None and view.state == "refused" and "never been ready" in view.reason
    assert "rolling restart not done" in refused(stack, "rolling restart not done")


# --- what a roll is refused for (the same judgement the HTTP layer makes from a snapshot) -------


def facts(prefill: int = 2, decode: int = 2, ready: bool = True) -> list[ServerFact]:
    roles = ["prefill"] * prefill + ["decode"] * decode
    return [ServerFact(f"server-{i + 1}", role, S.RUNNING, ready) for i, role in enumerate(roles)]


@pytest.mark.parametrize(
    ("phase", "ever_ready", "controller_up", "role", "allow_outage", "expected"),
    [
        (Phase.STARTING, False, True, None, True, "never been ready"),
        (Phase.DEGRADED, True, True, "prefill", False, "degraded, not ready"),
        (Phase.DRAINING, True, True, "prefill", False, "the service is draining"),
        (Phase.READY, True, False, "prefill", True, "the Controller is not running"),
        (Phase.READY, True, True, None, False, "restarting a decode Server can take the whole service down"),
        (Phase.READY, True, True, "decode", False, "restarting a decode Server can take the whole service down"),
    ],
)
def test_a_roll_is_refused_with_its_reason(
    phase: Phase, ever_ready: bool, controller_up: bool, role: str | None, allow_outage: bool, expected: str
) -> None:
    order, reason = rolling_refusal(phase, ever_ready, facts(), controller_up, role, allow_outage)
    assert order == [] and reason is not None and expected in reason


def test_one_prefill_server_cannot_roll_without_an_outage() -> None:
    order, reason = rolling_refusal(Phase.READY, True, facts(prefill=1, decode=3), True, "prefill", False)
    assert order == [] and reason is not None
    assert reason.startswith("server-1 is the only prefill Server") and "--allow-outage" in reason
    order, reason = rolling_refusal(Phase.READY, True, facts(prefill=1, decode=3), True, "prefill", True)
    assert (order, reason) == (["server-1"], None)


def test_what_a_roll_takes_and_in_which_order() -> None:
    assert rolling_refusal(Phase.READY, True, facts(), True, "prefill", False) == (["server-1", "server-2"], None)
    servers = facts()[::-1]  # decode first in the plan: prefill still first in the roll
    order, _ = rolling_refusal(Phase.READY, True, servers, True, None, True)
    assert order == ["server-2", "server-1", "server-4", "server-3"]
    assert rolling_refusal(Phase.READY, True, facts(), True, "flex", True) == ([], "there is no flex Server")
    assert rolling_refusal(Phase.READY, True, facts(), True, None, True, active=True)[1] == (
        "a rolling restart is under way"
    )


def test_a_roll_under_way_ends_when_the_service_drains() -> None:
    stack = Stack()
    stack.bring_up()
    roll(stack, role="prefill")
    stack.drain()
    view = snapshot(stack.engine, 0.0).rolling
    assert view is not None and view.state == "failed" and view.reason == "the service is draining"
    stack.run_for(30)
    assert not any("rolling restart (2 of 2)" in line for line in stack.fx.logs)  # nothing more is restarted
