"""Serving state beside process state, the phase reason that names who is behind, progress lines
while a process loads, and restarts counted by cause: the engine driven by a hand-moved clock."""

from __future__ import annotations

import signal
from pathlib import Path

from supervisor_pd.runtime.events import Probe, Restart
from supervisor_pd.runtime.serving import duration
from supervisor_pd.runtime.snapshot import snapshot
from supervisor_pd.runtime.states import Phase, ProcState, Serving
from tests.unit.runtime.fakes import Stack


def serving(stack: Stack, name: str) -> Serving:
    return stack.child(name).serving


def progress_lines(stack: Stack, name: str) -> list[str]:
    return [line for line in stack.fx.logs if line.startswith(f"{name}: loading for ")]


def test_duration_reads_like_kubectl_ages() -> None:
    assert [duration(s) for s in (0, 59.9, 60, 192, 3599, 3600, 3840)] == [
        "0s",
        "59s",
        "1m00s",
        "3m12s",
        "59m59s",
        "1h00m",
        "1h04m",
    ]


def test_a_server_is_running_and_loading_until_it_is_role_ready() -> None:
    stack = Stack()
    assert serving(stack, "server-1") is Serving.DOWN  # not started yet
    stack.tick()
    assert stack.state("server-1") is ProcState.STARTING and serving(stack, "server-1") is Serving.LOADING
    for name in stack.servers:
        stack.up(name)
    stack.up("coordinator")
    stack.up("controller")
    stack.advance(192)
    # Answering its management endpoints makes it `running`, not ready: the model still loads.
    assert stack.state("server-1") is ProcState.RUNNING and serving(stack, "server-1") is Serving.LOADING
    assert serving(stack, "controller") is Serving.READY  # no readiness check of its own: up is all
    assert stack.engine.phase is Phase.STARTING
    assert "server-1 (loading 3m12s)" in stack.engine.phase_reason
    assert "coordinator (loading 3m12s)" in stack.engine.phase_reason
    view = snapshot(stack.engine, stack.fx.clock).process("server-2")
    assert view is not None and view.serving is Serving.LOADING and view.serving_detail == "loading 3m12s"
    since = stack.child("server-1").serving_since
    assert since == stack.fx.wall() - 192  # began when the process was spawned

    stack.readiness_round()
    assert stack.engine.phase is Phase.READY
    assert {serving(stack, name) for name in stack.servers} == {Serving.ROLE_READY}
    assert serving(stack, "coordinator") is Serving.READY
    ready = snapshot(stack.engine, stack.fx.clock).process("server-1")
    assert ready is not None and ready.serving_detail == "" and ready.serving_since == stack.fx.wall()


def test_a_ready_server_that_fails_readiness_is_not_ready_then_down_then_loading_again() -> None:
    stack = Stack()
    stack.bring_up()
    stack.engine.health.next_round = stack.fx.clock
    stack.tick()
    stack.answer("server-3", Probe.READY, ok=False)
    assert serving(stack, "server-3") is Serving.NOT_READY  # was ready in this run
    assert "server-3 (not ready)" in stack.engine.phase_reason
    stack.exit("server-3")
    assert serving(stack, "server-3") is Serving.DOWN
    stack.gone("server-3")
    stack.advance(2)
    assert stack.state("server-3") is ProcState.STARTING and serving(stack, "server-3") is Serving.LOADING


def test_a_server_switching_role_says_so() -> None:
    stack = Stack()
    stack.bring_up()
    stack.engine.health.next_round = stack.fx.clock
    stack.tick()
    stack.answer("server-2", Probe.READY, ok=False, body={"service": {"roleStatus": "RoleSwitching"}})
    assert serving(stack, "server-2") is Serving.SWITCHING
    assert "server-2 (switching role)" in stack.engine.phase_reason


def test_an_npu_fault_is_a_serving_state_of_its_own() -> None:
    stack = Stack()
    stack.bring_up()
    stack.child("server-1").npu_fault = "NPU 0 chip 0: health Alarm"
    stack.tick()
    assert serving(stack, "server-1") is Serving.NPU_FAULT
    assert stack.state("server-1") is ProcState.RUNNING


def test_one_progress_line_per_loading_process_per_interval() -> None:
    stack = Stack(progress_seconds=10.0)
    stack.tick()
    for name in stack.servers:
        stack.up(name)
    stack.run_for(35)  # the loop wakes for the lines by itself: they are in next_wakeup()
    lines = progress_lines(stack, "server-1")
    assert len(lines) == 3, lines  # at 10, 20, 30 s: not a flood
    assert lines[0] == (
        "server-1: loading for 10s (running, not role-ready: roleStatus not reported, waiting for the model "
        "and the Controller's role)"
    )
    assert all(len(progress_lines(stack, name)) == 3 for name in stack.servers)
    stack.up("coordinator")
    stack.up("controller")
    stack.readiness_round()
    stack.run_for(30)
    assert len(progress_lines(stack, "server-1")) == 3  # ready: no more lines


def test_a_process_that_has_not_answered_yet_says_what_it_waits_for() -> None:
    stack = Stack(progress_seconds=10.0, server_start_seconds=300.0)
    stack.run_for(10.5)
    (line,) = progress_lines(stack, "server-1")
    assert "starting: has not answered /v1/config and /v1/status yet; start deadline in 4m50s" in line


def test_no_progress_lines_when_switched_off() -> None:
    stack = Stack(progress_seconds=0.0)
    stack.tick()
    stack.run_for(60)
    assert progress_lines(stack, "server-1") == []


def test_restarts_are_counted_by_cause() -> None:
    stack = Stack(liveness_failures=1)
    stack.fx.files.add(Path("/state/controller/logs/controller_process_status.json"))
    stack.bring_up()

    stack.exit("server-1")  # a crash
    assert stack.child("server-1").restart_causes == {"crash": 1}

    stack.post(Restart("server-2"))  # the operator's, through the API
    server = stack.child("server-2")
    assert server.restart_causes == {}  # counted when it has stopped, not when asked
    stack.exit("server-2", code=-signal.SIGABRT)  # MindIE ends a requested stop with SIGABRT
    assert server.restart_causes == {"operator": 1} and server.restarts == 1
    assert server.last_exit == "stopped for a restart requested through the API (killed by SIGABRT)"
    assert server.history == []  # not a failure: no backoff, no budget spent

    stack.post(Restart("server-3", "tls-renewal"))
    stack.exit("server-3", code=0)
    assert stack.child("server-3").restart_causes == {"tls-renewal": 1}
    assert stack.child("server-3").last_exit == "stopped to load the renewed certificate (exit code 0)"

    stack.engine.health.next_round = stack.fx.clock
    stack.tick()
    controller = stack.child("controller")
    controller.next_live = stack.fx.clock
    stack.tick()
    stack.answer("controller", Probe.LIVE, ok=False)  # liveness_failures=1: restarted at once
    assert controller.restart_causes == {"liveness": 1}
    view = snapshot(stack.engine, stack.fx.clock).process("controller")
    assert view is not None and view.restart_causes == {"liveness": 1} and view.last_restart_cause == "liveness"


def test_a_restart_mindie_rules_require_is_a_dependency() -> None:
    stack = Stack()
    stack.bring_up()
    stack.exit("controller")  # no recovery file: the Servers holding roles must go too
    assert stack.child("controller").restart_causes == {"crash": 1}
    for name in stack.servers:
        stack.exit(name, code=-signal.SIGABRT)
        assert stack.child(name).restart_causes == {"dependency": 1}
        assert stack.child(name).last_exit == "stopped for a restart MindIE's rules required (killed by SIGABRT)"


def test_failures_are_logged_as_warnings_and_giving_up_as_an_error() -> None:
    stack = Stack(restart_budget=0)
    stack.bring_up()
    stack.post(Restart("server-2"))
    stack.exit("server-2", code=-signal.SIGABRT)  # asked for: info
    stack.exit("server-1")  # a crash with no budget left: the service gives up
    levels = dict(zip(stack.fx.logs, stack.fx.levels, strict=True))
    assert levels["service: ready -> degraded: not ready: server-2 (stopping), coordinator (not ready)"] == "warning"
    restarted = [line for line in levels if line.startswith("server-2: stopping -> backoff")]
    assert [levels[line] for line in restarted] == ["info"]
    failed = [line for line in levels if line.startswith("server-1: running -> failed")]
    assert [levels[line] for line in failed] == ["error"]
    assert [levels[line] for line in levels if line.startswith("giving up: ")] == ["error"]


def test_a_process_not_started_yet_is_dated_from_the_engine_start() -> None:
    stack = Stack()
    started = stack.fx.wall()
    stack.tick()  # the Servers start; the Controller waits for them
    controller = snapshot(stack.engine, stack.fx.clock).process("controller")
    assert controller is not None and controller.state is ProcState.PENDING
    assert controller.since == started and controller.serving_since == started
