"""The engine driven by events and a hand-moved clock: states, effects and MindIE's rules.

Each scenario is a plain function so that `test_every_legal_move_is_exercised` can run them all
and check that together they take every edge of the transition tables.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from supervisor_pd.errors import ExitCode
from supervisor_pd.runtime import states
from supervisor_pd.runtime.drain import Stage
from supervisor_pd.runtime.events import Exited, Probe
from supervisor_pd.runtime.states import Phase, ProcState
from tests.unit.runtime.fakes import Stack, emfile
from tests.unit.runtime.test_operator import OPERATOR_SCENARIOS

S = ProcState
SCENARIOS: list[Callable[[], object]] = []


def scenario(function: Callable[[], object]) -> Callable[[], object]:
    SCENARIOS.append(function)
    return function


# --- bring-up ---------------------------------------------------------------------------------


@scenario
def test_start_order_follows_the_declared_dependencies() -> None:
    stack = Stack()
    stack.tick()
    assert stack.spawned() == ["server-1", "server-2", "server-3", "server-4"]
    for name in ("server-1", "server-2", "server-3"):
        stack.up(name)
    assert "coordinator" not in stack.spawned()  # its first start waits for every Server
    stack.up("server-4")
    assert stack.spawned()[-1] == "coordinator"
    assert stack.state("controller") is S.PENDING
    stack.up("coordinator")
    assert stack.spawned()[-1] == "controller"


@scenario
def test_servers_start_a_few_at_a_time() -> None:
    stack = Stack(start_concurrency=1)
    stack.tick()
    assert stack.spawned() == ["server-1"]
    stack.up("server-1")
    assert stack.spawned() == ["server-1", "server-2"]  # a slot frees when a Server answers


@scenario
def test_the_service_is_ready_only_when_the_coordinator_was_seen_after_every_server() -> None:
    stack = Stack()
    stack.tick()
    for name in stack.servers:
        stack.up(name)
    stack.up("coordinator")
    stack.up("controller")
    stack.answer_all(Probe.READY, ok=False)  # a round under way from while they came up: not ready yet
    stack.engine.health.next_round = stack.fx.clock
    stack.tick()
    # Every Server is asked first; the Coordinator only once they have all answered.
    assert stack.pending("coordinator", Probe.READY) is None
    for name in stack.servers[:-1]:
        stack.answer(name, Probe.READY)
    assert stack.pending("coordinator", Probe.READY) is None
    stack.answer("server-4", Probe.READY)
    assert stack.pending("coordinator", Probe.READY) is not None
    assert stack.engine.phase is Phase.STARTING
    stack.answer("coordinator", Probe.READY)
    assert stack.engine.phase is Phase.READY
    assert stack.engine.ever_ready


def test_a_coordinator_answer_from_before_a_server_was_ready_does_not_count() -> None:
    stack = Stack()
    stack.bring_up()
    coordinator = stack.child("coordinator")
    server = stack.child("server-2")
    # server-2 failed a readiness check, then passed one after the Coordinator was last asked.
    server.readiness.clear()
    server.readiness.observe(True, coordinator.readiness.last + 1)
    assert not stack.engine.health.counts(coordinator)


# --- readiness falls in the same turn as an exit, and returns only with new facts -------------


@scenario
def test_an_exit_makes_the_service_not_ready_before_anything_else_happens() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("server-1", tick=False)  # handled, no tick yet: the same loop turn
    assert stack.engine.phase is Phase.DEGRADED
    assert not stack.engine.health.counts(stack.child("coordinator"))
    assert stack.state("server-1") is S.BACKOFF
    assert "server-1" in stack.killed()  # what it left behind is killed


@scenario
def test_readiness_returns_only_after_the_restarted_server_and_then_the_coordinator_answer() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("server-1")
    stack.gone("server-1")
    stack.advance(2)  # the backoff is over
    assert stack.state("server-1") is S.STARTING
    stack.up("server-1")
    # The other Servers' and the Coordinator's readiness from before the exit is not enough.
    stack.engine.health.next_round = stack.fx.clock
    stack.tick()
    for name in ("server-2", "server-3", "server-4"):
        stack.answer(name, Probe.READY)
    assert stack.engine.phase is Phase.DEGRADED
    stack.answer("server-1", Probe.READY, ok=False)  # role not assigned yet
    stack.answer("coordinator", Probe.READY)  # answers 200, but was asked before server-1 was ready
    assert stack.engine.phase is Phase.DEGRADED
    stack.readiness_round()
    assert stack.engine.phase is Phase.READY
    assert stack.fx.logs[-1] == "service ready again"


def test_answers_from_an_earlier_run_are_dropped() -> None:
    stack = Stack()
    stack.bring_up()
    stack.engine.health.next_round = stack.fx.clock
    stack.tick()
    old = stack.pending("server-1", Probe.READY)
    assert old is not None
    stack.exit("server-1")
    stack.gone("server-1")
    stack.advance(2)
    stack.up("server-1")
    stack.answer("server-1", Probe.READY)  # the question was put to the process that died
    assert stack.child("server-1").readiness.last is None


@scenario
def test_a_coordinator_exit_clears_the_service_readiness_at_once() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("coordinator", tick=False)
    assert stack.engine.phase is Phase.DEGRADED
    stack.tick()
    stack.gone("coordinator")
    stack.advance(2)
    assert stack.state("coordinator") is S.STARTING  # a restart does not wait for the Servers
    stack.up("coordinator")
    stack.readiness_round()
    assert stack.engine.phase is Phase.READY


def test_the_controller_exit_does_not_touch_the_service_readiness() -> None:
    stack = Stack()
    stack.stack_files = stack.fx.files.add(Path("/state/controller/logs/controller_process_status.json"))
    stack.bring_up()
    stack.exit("controller")
    assert stack.engine.phase is Phase.READY
    assert stack.state("controller") is S.BACKOFF


# --- failures and restarts --------------------------------------------------------------------


@scenario
def test_a_crash_is_restarted_after_its_backoff_and_once_nothing_of_it_is_left() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("server-3")
    delay = stack.child("server-3").restart_at - stack.fx.clock
    assert 0.7 <= delay <= 1.3  # 1 s with jitter
    stack.advance(2)
    assert stack.state("server-3") is S.BACKOFF  # its group is not known to be gone yet
    stack.gone("server-3")
    assert stack.state("server-3") is S.STARTING
    assert stack.child("server-3").restarts == 1
    assert stack.spawned().count("coordinator") == 1  # nothing else restarted


@scenario
def test_a_server_waits_for_its_ports_before_it_restarts_and_is_not_charged_for_it() -> None:
    # MindIE's Server dies on a port it cannot bind without SO_REUSEADDR (http_server.cpp
    # IsPortUsed); a connection of its last run keeps the port so for up to a minute.
    stack = Stack(port_wait_seconds=150.0)
    stack.bring_up()
    management = stack.child("server-3").spec.server.ports.management
    stack.fx.busy_ports.add(management)
    stack.exit("server-3")
    stack.gone("server-3")
    stack.advance(2)  # the backoff is over, the port is not
    assert stack.state("server-3") is S.BACKOFF
    assert stack.spawned().count("server-3") == 1
    assert any(f"waiting for port(s) {management}" in line for line in stack.fx.logs)
    stack.advance(30)
    assert stack.state("server-3") is S.BACKOFF
    stack.fx.busy_ports.clear()
    stack.advance(1)
    assert stack.state("server-3") is S.STARTING
    assert stack.child("server-3").restarts == 1  # the failure itself, not the wait


@scenario
def test_a_port_that_stays_taken_is_tried_after_the_wait_limit() -> None:
    stack = Stack(port_wait_seconds=10.0)
    stack.bring_up()
    stack.fx.busy_ports.add(stack.child("server-2").spec.server.ports.port)
    stack.exit("server-2")
    stack.gone("server-2")
    stack.advance(2)
    assert stack.state("server-2") is S.BACKOFF
    stack.advance(11)
    assert stack.state("server-2") is S.STARTING  # and it will fail as it will


@scenario
def test_a_process_failing_too_often_escalates_with_exit_code_3() -> None:
    stack = Stack(restart_budget=1)
    stack.bring_up()
    stack.exit("server-2")
    stack.gone("server-2")
    stack.advance(2)
    stack.exit("server-2")  # exits while starting, the second failure in a row
    assert stack.state("server-2") is S.FAILED
    assert stack.engine.phase is Phase.FAILED
    assert stack.engine.exit_code is ExitCode.BUDGET_EXHAUSTED
    assert stack.engine.drainer is not None and not stack.engine.drainer.graceful


@scenario
def test_liveness_failures_make_a_process_unhealthy_then_restart_it() -> None:
    stack = Stack(liveness_failures=3)
    stack.bring_up()
    stack.advance(6)  # controller's liveness is due (it has no readiness check)
    stack.answer("controller", Probe.LIVE, ok=False)
    assert stack.state("controller") is S.UNHEALTHY
    stack.advance(6)
    stack.answer("controller", Probe.LIVE)
    assert stack.state("controller") is S.RUNNING  # recovered
    for _ in range(3):
        stack.advance(6)
        stack.answer("controller", Probe.LIVE, ok=False)
    assert stack.state("controller") is S.BACKOFF
    assert "controller" in stack.killed()


@scenario
def test_an_unhealthy_process_out_of_budget_fails_the_service() -> None:
    stack = Stack(liveness_failures=2, restart_budget=0)
    stack.bring_up()
    stack.advance(6)
    stack.answer("controller", Probe.LIVE, ok=False)
    stack.advance(6)
    stack.answer("controller", Probe.LIVE, ok=False)
    assert stack.state("controller") is S.FAILED
    assert stack.engine.phase is Phase.FAILED


def test_a_ready_answer_counts_as_alive_so_no_liveness_request_is_sent() -> None:
    stack = Stack()
    stack.bring_up()
    before = len([c for c in stack.fx.probes if c.probe is Probe.LIVE and c.name == "server-1"])
    for _ in range(3):
        stack.advance(5)
        stack.readiness_round()
    after = len([c for c in stack.fx.probes if c.probe is Probe.LIVE and c.name == "server-1"])
    assert after == before


@scenario
def test_a_process_that_does_not_come_up_in_time_is_restarted() -> None:
    stack = Stack(server_start_seconds=10.0)
    stack.tick()
    stack.advance(11)
    assert stack.state("server-1") is S.BACKOFF
    assert "did not answer /v1/config and /v1/status within 10 s" in stack.child("server-1").reason


@scenario
def test_a_start_deadline_missed_without_budget_fails_the_service() -> None:
    stack = Stack(server_start_seconds=10.0, restart_budget=0)
    stack.tick()
    stack.advance(11)
    assert stack.state("server-1") is S.FAILED


@scenario
def test_the_service_not_ready_in_time_exits_with_code_4() -> None:
    stack = Stack(ready_seconds=60.0)
    stack.tick()
    stack.advance(61)
    assert stack.engine.phase is Phase.FAILED
    assert stack.engine.exit_code is ExitCode.STARTUP_DEADLINE


@scenario
def test_a_requested_restart_is_graceful_then_forced() -> None:
    stack = Stack(stop_seconds=10.0)
    stack.bring_up()
    pid = stack.child("server-2").pid
    stack.restart("server-2")
    assert stack.state("server-2") is S.STOPPING
    assert ("signal", pid, signal.SIGTERM) in stack.fx.calls
    assert stack.engine.phase is Phase.DEGRADED  # its readiness went with the request
    stack.advance(11)
    assert "server-2" in stack.killed()  # ignored SIGTERM: SIGKILL at the deadline
    stack.exit("server-2", code=-signal.SIGKILL)
    assert stack.state("server-2") is S.BACKOFF
    stack.gone("server-2")
    assert stack.state("server-2") is S.STARTING  # at once: a requested restart has no backoff
    assert stack.child("server-2").history == []  # and is not a failure


@scenario
def test_a_restart_while_starting() -> None:
    stack = Stack()
    stack.tick()
    stack.restart("server-1")
    assert stack.state("server-1") is S.STOPPING


def test_a_restart_of_a_process_that_is_not_running_is_refused() -> None:
    stack = Stack()
    stack.restart("controller")
    assert stack.state("controller") is S.PENDING
    assert any(line.startswith("restart of controller not done: it is pending") for line in stack.fx.logs)


# --- the supervisor's own trouble is not the child's --------------------------------------------


@scenario
def test_running_out_of_file_descriptors_is_retried_without_charging_the_child() -> None:
    stack = Stack(restart_budget=1)
    stack.bring_up()
    stack.exit("server-1")  # a crash, then the supervisor itself is out of file descriptors
    stack.gone("server-1")
    stack.fx.spawn_errors = [emfile()]
    stack.advance(2)
    server = stack.child("server-1")
    assert server.state is S.BACKOFF and len(server.history) == 1 and server.restarts == 1
    assert any("cannot start server-1 now: the supervisor is out of file descriptors (EMFILE)" in line
               for line in stack.fx.logs)  # fmt: skip
    stack.advance(0.3)
    assert server.state is S.STARTING  # retried, never charged: a second failure would have escalated
    assert len(server.history) == 1 and server.restarts == 1
    assert stack.engine.phase is not Phase.FAILED


@scenario
def test_a_command_that_cannot_be_started_is_a_failure_of_the_child() -> None:
    stack = Stack()
    stack.fx.spawn_errors = [OSError(errno.ENOENT, "No such file or directory")]
    stack.tick()
    assert stack.state("server-1") is S.BACKOFF
    assert stack.child("server-1").history  # charged
    stack.fx.spawn_errors = [OSError(errno.EACCES, "Permission denied")]
    stack.advance(3)
    assert stack.state("server-1") is S.BACKOFF  # failed again from backoff


@scenario
def test_a_spawn_failure_beyond_the_budget_fails_the_service() -> None:
    stack = Stack(restart_budget=0)
    stack.fx.spawn_errors = [OSError(errno.ENOENT, "No such file or directory")]
    stack.tick()
    assert stack.state("server-1") is S.FAILED


@scenario
def test_a_spawn_failure_from_backoff_beyond_the_budget() -> None:
    stack = Stack(restart_budget=1, start_concurrency=1)
    stack.fx.spawn_errors = [OSError(errno.ENOENT, "x"), OSError(errno.ENOENT, "x")]
    stack.tick()
    stack.advance(3)
    assert stack.state("server-1") is S.FAILED


# --- the guardian -------------------------------------------------------------------------------


def test_a_dead_guardian_is_started_again_and_told_the_groups() -> None:
    stack = Stack()
    stack.bring_up()
    first = stack.engine.guardian.pid
    stack.fx.tracked = {}
    stack.advance(2)
    stack.post(Exited(first, -signal.SIGKILL))
    guardian = stack.engine.guardian
    assert guardian.pid is not None and guardian.pid != first
    assert guardian.restarts == 1 and guardian.last_exit == "killed by SIGKILL"
    assert set(stack.fx.tracked) == set(stack.engine.children)
    assert any("the guardian exited (killed by SIGKILL)" in line for line in stack.fx.logs)


def test_a_guardian_that_dies_at_once_is_not_restarted_in_a_loop() -> None:
    stack = Stack()
    stack.post(Exited(stack.engine.guardian.pid, 1))
    assert stack.engine.guardian.pid is None
    stack.advance(1.1)
    assert stack.engine.guardian.pid is not None


# --- MindIE's rules -----------------------------------------------------------------------------


@scenario
def test_a_server_lost_in_the_first_role_assignment_restarts_the_controller() -> None:
    stack = Stack()
    stack.tick()
    for name in stack.servers:
        stack.up(name)
    stack.up("coordinator")
    stack.up("controller")
    stack.exit("server-4")  # before the service was ever ready
    assert stack.state("controller") is S.RUNNING
    stack.gone("server-4")
    stack.advance(2)
    stack.up("server-4")
    assert stack.state("controller") is S.STOPPING  # once the Server is back
    stack.exit("controller", code=-signal.SIGKILL)
    assert stack.state("controller") is S.BACKOFF
    stack.gone("controller")
    assert stack.state("controller") is S.STARTING


def test_a_controller_with_its_recovery_file_restarts_alone() -> None:
    stack = Stack()
    stack.fx.files.add(Path("/state/controller/logs/controller_process_status.json"))
    stack.bring_up()
    stack.exit("controller")
    assert all(stack.state(name) is S.RUNNING for name in stack.servers)


@scenario
def test_a_controller_without_its_recovery_file_takes_the_servers_with_roles_along() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("controller")
    assert all(stack.state(name) is S.STOPPING for name in stack.servers)
    assert set(stack.killed()) >= set(stack.servers)


@scenario
def test_a_controller_that_stops_refreshing_the_coordinator_is_restarted() -> None:
    stack = Stack(controller_stall_seconds=20.0)
    stack.bring_up()
    stack.advance(1)
    stack.readiness_round(ok=True)
    stack.engine.health.next_round = stack.fx.clock
    stack.tick()
    for name in stack.servers:
        stack.answer(name, Probe.READY)
    stack.answer("coordinator", Probe.READY, ok=False)  # the Controller no longer refreshes it
    assert stack.engine.phase is Phase.DEGRADED
    stack.advance(10)
    assert stack.state("controller") is S.RUNNING
    stack.advance(11)
    assert stack.state("controller") is S.BACKOFF
    assert "the Controller is not refreshing it" in stack.child("controller").reason


def back_with_the_coordinator_not_ready(stack: Stack, name: str) -> None:
    """`name` exits and comes back ready; the Coordinator answers not ready from then on."""
    stack.exit(name)
    stack.gone(name)
    stack.advance(2)
    stack.up(name)
    for _ in range(4):
        stack.engine.health.next_round = stack.fx.clock
        stack.tick()
        for server in stack.servers:
            if stack.pending(server, Probe.READY) is not None:
                stack.answer(server, Probe.READY)
            if stack.pending(server, Probe.LIVE) is not None:
                role = stack.child(server).spec.server.role.value
                stack.answer(server, Probe.LIVE, body={"service": {"roleStatus": "RoleReady", "currentRole": role}})
        if stack.pending("coordinator", Probe.READY) is not None:
            stack.answer("coordinator", Probe.READY, ok=False)
    assert all(stack.child(server).readiness.last is not None for server in stack.servers)
    assert stack.engine.phase is Phase.DEGRADED


@scenario
def test_a_coordinator_that_lost_a_decode_link_is_restarted_once_every_server_is_ready() -> None:
    # MindIE's Coordinator refuses every instance for 2 minutes after a decode link is lost for
    # good (DExceptionHandler.cpp AddToFaulty); a restart is what clears it.
    stack = Stack(controller_stall_seconds=60.0, coordinator_quarantine_seconds=10.0)
    stack.bring_up()
    back_with_the_coordinator_not_ready(stack, "server-3")  # a decode Server
    stack.advance(9)
    assert stack.state("coordinator") is S.RUNNING
    stack.advance(2)
    assert stack.state("coordinator") is S.STOPPING
    assert "refuses every instance for 2 minutes" in stack.child("coordinator").reason
    assert stack.state("controller") is S.RUNNING  # not the Controller's fault


@scenario
def test_a_prefill_restart_does_not_make_the_coordinator_suspect() -> None:
    stack = Stack(controller_stall_seconds=60.0, coordinator_quarantine_seconds=10.0)
    stack.bring_up()
    back_with_the_coordinator_not_ready(stack, "server-1")  # a prefill Server
    stack.advance(11)
    assert stack.state("coordinator") is S.RUNNING
    stack.advance(50)
    assert stack.state("controller") is S.BACKOFF  # the Controller judgement, as before


def test_the_servers_report_their_work_and_role() -> None:
    stack = Stack()
    rules = stack.engine.rules
    from supervisor_pd.runtime.probes import Result

    body = {"service": {"roleStatus": "RoleReady", "currentRole": "decode"}, "resource": {"runningRequestNum": 3,
            "waitingRequestNum": 2}}  # fmt: skip
    assert rules.busy(Result(True, "", body)) == 5
    assert rules.busy(Result(True, "", {"resource": {"runningRequestNum": True}})) == 0
    assert rules.busy(Result(True, "", None)) == 0


# --- stopping -----------------------------------------------------------------------------------


def drain_to_term(stack: Stack) -> None:
    """From a fresh drain: hooks done, no work, every Server answered its stop request."""
    stack.hooks_done()
    idle = {"resource": {"runningRequestNum": 0, "waitingRequestNum": 0}}
    for name in stack.servers:
        if stack.pending(name, Probe.IDLE) is not None:
            stack.answer(name, Probe.IDLE, body=idle)
    for name in stack.servers:
        if stack.pending(name, Probe.STOP) is not None:
            stack.answer(name, Probe.STOP)


@scenario
def test_sigterm_drains_in_reverse_dependency_order() -> None:
    stack = Stack()
    stack.bring_up()
    stack.signal()
    assert stack.engine.phase is Phase.DRAINING
    assert any(call[0] == "hooks" for call in stack.fx.calls)
    assert stack.pending("server-1", Probe.IDLE) is None  # the HTTP port's requests first
    stack.hooks_done()
    stack.answer("server-1", Probe.IDLE, body={"resource": {"runningRequestNum": 1}})
    for name in stack.servers[1:]:
        stack.answer(name, Probe.IDLE)
    assert stack.engine.drainer.stage is Stage.SETTLE  # one request still running
    assert "waiting for 1 request(s) in flight on the Servers" in stack.fx.logs
    stack.advance(0.2)
    for name in stack.servers:
        stack.answer(name, Probe.IDLE)
    assert stack.engine.drainer.stage is Stage.STOP_REQUESTS
    for name in stack.servers:
        stack.answer(name, Probe.STOP)
    assert stack.signalled(signal.SIGTERM) == ["controller"]
    stack.exit("controller", code=0)
    stack.gone("controller")
    assert stack.signalled(signal.SIGTERM) == ["controller", "coordinator"]
    stack.exit("coordinator", code=0)
    assert stack.signalled(signal.SIGTERM)[2:] == stack.servers
    for name in stack.servers:
        stack.exit(name, code=0)
    for name in [*stack.servers, "coordinator"]:
        stack.gone(name)
    assert stack.engine.finished
    assert stack.engine.phase is Phase.STOPPED
    assert all(stack.state(name) is S.STOPPED for name in stack.engine.children)
    assert stack.engine.exit_code is ExitCode.OK


@scenario
def test_a_process_deaf_to_sigterm_costs_only_its_own_share_of_the_grace_period() -> None:
    stack = Stack(grace_seconds=30.0)
    stack.bring_up()
    stack.signal()
    drain_to_term(stack)
    began = stack.fx.clock
    # The Controller ignores SIGTERM: it gets a third of the time left, then SIGKILL.
    assert stack.signalled(signal.SIGTERM) == ["controller"]
    share = stack.engine.drainer.group_until - began
    assert share == pytest.approx(30.0 / 3)
    stack.advance(share - 0.1)
    assert "controller" not in stack.killed()
    stack.advance(0.2)
    assert "controller" in stack.killed()
    # The Coordinator gets its own share of what is left, not an instant SIGKILL.
    assert stack.signalled(signal.SIGTERM) == ["controller", "coordinator"]
    assert stack.engine.drainer.group_until - stack.fx.clock == pytest.approx((30.0 - share - 0.1) / 2, abs=0.2)
    assert "coordinator" not in stack.killed()


@scenario
def test_a_drain_while_processes_start_or_wait() -> None:
    stack = Stack()
    stack.tick()
    stack.up("server-1")
    stack.drain()
    # Not yet started: stopped at once. Starting or running: stopped by the drain.
    assert stack.state("controller") is S.STOPPED and stack.state("coordinator") is S.STOPPED
    stack.exit("server-2", code=1)  # exits on its own while the drain settles
    assert stack.state("server-2") is S.STOPPED
    stack.exit("server-1", code=1)
    assert stack.state("server-1") is S.STOPPED


@scenario
def test_an_unhealthy_process_is_stopped_by_a_drain() -> None:
    stack = Stack()
    stack.bring_up()
    stack.advance(6)
    stack.answer("controller", Probe.LIVE, ok=False)
    stack.exit("server-1")  # in backoff when the drain comes
    stack.signal()
    drain_to_term(stack)
    assert stack.state("controller") is S.STOPPING
    assert stack.state("server-1") is S.STOPPED


@scenario
def test_an_unhealthy_process_that_exits_while_draining_is_stopped() -> None:
    stack = Stack()
    stack.bring_up()
    stack.advance(6)
    stack.answer("controller", Probe.LIVE, ok=False)
    stack.signal()
    stack.exit("controller", code=0)
    assert stack.state("controller") is S.STOPPED


@scenario
def test_a_restart_under_way_when_the_drain_comes_ends_stopped() -> None:
    stack = Stack()
    stack.bring_up()
    stack.restart("server-2")
    stack.signal()
    stack.exit("server-2", code=0)
    assert stack.state("server-2") is S.STOPPED


@scenario
def test_a_second_signal_kills_everything_at_once() -> None:
    stack = Stack()
    stack.bring_up()
    stack.signal(signal.SIGTERM)
    stack.signal(signal.SIGINT)
    assert set(stack.killed()) == set(stack.engine.children)
    assert "SIGINT again: stopping now" in stack.fx.logs
    for name in stack.engine.children:
        stack.exit(name, code=-signal.SIGKILL)
        stack.gone(name)
    assert stack.engine.finished


@scenario
def test_a_signal_during_a_drain_asked_for_through_the_api_lets_it_go_on() -> None:
    stack = Stack()
    stack.bring_up()
    stack.drain()
    stack.signal(signal.SIGTERM)
    assert "SIGTERM received: already draining" in stack.fx.logs
    assert stack.killed() == []


@scenario
def test_sighup_drains_like_sigterm() -> None:
    stack = Stack()
    stack.tick()
    stack.signal(signal.SIGHUP)
    assert stack.engine.phase is Phase.DRAINING
    assert stack.engine.phase_reason == "SIGHUP received"


@scenario
def test_a_drain_before_the_first_ready() -> None:
    stack = Stack(ready_seconds=60.0)
    stack.tick()
    stack.advance(61)  # escalates
    stack.signal()  # a signal while failing: no more waiting
    assert "SIGTERM while failing: stopping now" in stack.fx.logs


@scenario
def test_a_degraded_service_can_drain_or_fail() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("server-1")
    assert stack.engine.phase is Phase.DEGRADED
    stack.drain()
    assert stack.engine.phase is Phase.DRAINING
    other = Stack(restart_budget=0)
    other.bring_up()
    other.exit("server-1")
    assert other.engine.phase is Phase.FAILED
    third = Stack(restart_budget=1)
    third.bring_up()
    third.exit("server-1")
    third.gone("server-1")
    third.advance(2)
    third.exit("server-1")
    assert third.engine.phase is Phase.FAILED


@scenario
def test_a_drain_from_ready_with_an_exit_in_every_state() -> None:
    stack = Stack()
    stack.bring_up()
    stack.drain()
    stack.exit("coordinator", code=0)  # running, while the drain settles
    assert stack.state("coordinator") is S.STOPPED


def test_processes_left_at_the_end_of_the_grace_period_are_killed_and_the_drain_ends() -> None:
    stack = Stack(grace_seconds=9.0)
    stack.bring_up()
    stack.signal()
    drain_to_term(stack)
    for _ in range(4):
        stack.advance(3.1)
    assert set(stack.killed()) == set(stack.engine.children)
    stack.advance(11)  # their groups never reported gone: the drain still ends
    assert stack.engine.finished


# --- the tables ---------------------------------------------------------------------------------


def test_an_illegal_move_is_refused_loudly() -> None:
    stack = Stack(strict=True)
    with pytest.raises(states.IllegalTransition, match="pending -> running is not allowed"):
        stack.engine.transition(stack.child("server-1"), S.RUNNING, "test")
    lenient = Stack(strict=False)
    lenient.engine.transition(lenient.child("server-1"), S.RUNNING, "test")
    assert lenient.state("server-1") is S.PENDING
    assert lenient.engine.internal_errors == 1
    assert lenient.fx.logs[-1].startswith("internal error, refused: server-1: pending -> running")


def test_every_legal_move_is_exercised(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[tuple[str, str]] = set()
    real = states.check

    def record(table, old, new) -> None:  # type: ignore[no-untyped-def]
        real(table, old, new)
        seen.add((old.value, new.value) if table is states.TRANSITIONS else ("phase:" + old.value, new.value))

    monkeypatch.setattr(states, "check", record)
    for run in [*SCENARIOS, *OPERATOR_SCENARIOS]:  # an operator's stop and start: test_operator.py
        run()
    edges = {(old.value, new.value) for old, targets in states.TRANSITIONS.items() for new in targets}
    edges |= {("phase:" + old.value, new.value) for old, targets in states.PHASE_TRANSITIONS.items() for new in targets}
    assert sorted(edges - seen) == []


def test_the_coordinator_alone_is_asked_often_when_it_is_the_last_step_back() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("coordinator")
    stack.gone("coordinator")
    stack.advance(2)
    stack.up("coordinator")  # the Servers stayed ready: the Coordinator is all that is missing
    for _ in range(3):  # the Servers' rounds, until the Coordinator is asked
        for name in stack.servers:
            if stack.pending("coordinator", Probe.READY) is None and stack.pending(name, Probe.READY) is not None:
                stack.answer(name, Probe.READY)
    stack.answer("coordinator", Probe.READY, ok=False)  # not refreshed by the Controller yet
    assert stack.engine.phase is Phase.DEGRADED
    servers_asked = len([c for c in stack.fx.probes if c.probe is Probe.READY and c.name == "server-1"])
    for _ in range(8):
        stack.advance(0.05)
        if stack.pending("coordinator", Probe.READY) is not None:
            stack.answer("coordinator", Probe.READY, ok=False)
    coordinator_asked = [c for c in stack.fx.probes if c.probe is Probe.READY and c.name == "coordinator"]
    assert len([c for c in coordinator_asked if c.sent > stack.fx.clock - 0.41]) >= 6
    assert len([c for c in stack.fx.probes if c.probe is Probe.READY and c.name == "server-1"]) <= servers_asked + 1
    stack.advance(0.05)
    stack.answer("coordinator", Probe.READY)
    assert stack.engine.phase is Phase.READY


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_the_loop_never_spins(scenario: Callable[[], object], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # After every tick, the engine's next moment lies ahead: a past one would spin the loop.
    from supervisor_pd.runtime.engine import Engine

    real = Engine.tick

    def checked(self: Engine) -> None:
        real(self)
        if self.next_wakeup() <= self.fx.now():  # something is due at once: one more tick does it
            real(self)
            assert self.next_wakeup() > self.fx.now(), "due again at once: the loop would spin"

    monkeypatch.setattr(Engine, "tick", checked)
    scenario()


def test_a_recovering_server_is_asked_often_and_only_it() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("server-3")
    stack.gone("server-3")
    stack.advance(2)
    stack.up("server-3")
    stack.answer_all(Probe.READY, ok=True)  # the round under way: server-3 answers, not ready yet
    if stack.pending("server-3", Probe.READY) is not None:
        stack.answer("server-3", Probe.READY, ok=False)
    stack.child("server-3").readiness.clear()
    began = stack.fx.clock
    for _ in range(6):
        stack.advance(0.05)
        if stack.pending("server-3", Probe.READY) is not None:
            stack.answer("server-3", Probe.READY, ok=False)
    asked = [c for c in stack.fx.probes if c.probe is Probe.READY and c.sent > began]
    assert len([c for c in asked if c.name == "server-3"]) >= 5
    assert not [c for c in asked if c.name in ("server-1", "server-2", "server-4")]


def test_driven_by_its_own_wakeups_a_restarted_process_is_probed_at_once() -> None:
    # The loop wakes only when next_wakeup() says: nothing due may be missed until the heartbeat.
    stack = Stack(restart_backoff=0.2, restart_backoff_max=0.2)
    stack.bring_up()
    stack.exit("coordinator")
    stack.gone("coordinator")
    stack.run_for(0.5)
    assert stack.state("coordinator") is S.STARTING
    started = stack.child("coordinator").started_at
    first = next(c for c in stack.fx.probes if c.name == "coordinator" and c.probe is Probe.UP and c.run == 2)
    assert first.sent == started  # in the very tick that spawned it, not a second later
    probes = [c for c in stack.fx.probes if c.name == "coordinator" and c.probe is Probe.UP and c.run == 2]
    assert len(probes) == 1  # the next one waits for this one's answer
    answered = stack.fx.clock
    stack.answer("coordinator", Probe.UP, ok=False, tick=False)  # not listening yet
    stack.run_for(0.2)
    probes = [c for c in stack.fx.probes if c.name == "coordinator" and c.probe is Probe.UP and c.run == 2]
    assert probes[1].sent == answered  # overdue already: asked again at once
    assert len(probes) == 2  # and not again while that one is on its way
