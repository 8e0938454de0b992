"""What a new user reads under `run`: a short summary before the plan, and once the service is
first ready, three commands to try with this run's port (launch.py, plan/render.py)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from supervisor_pd.launch import first_steps
from supervisor_pd.plan.model import Plan
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.render import run_summary
from supervisor_pd.settings import Settings
from tests import factories
from tests.factories import FakeChecker
from tests.unit.runtime.fakes import Stack


def plan_for(settings: Settings) -> Plan:
    return make_plan(factories.facts(factories.chips(8, per_node=4)), factories.inputs(), settings, FakeChecker())


def test_the_summary_is_a_few_lines_with_what_an_operator_needs_first() -> None:
    plan = plan_for(Settings(api_port=18123))
    lines = run_summary(plan, "/srv/conf", "stdout")
    assert len(lines) <= 8
    text = "\n".join(lines)
    assert "8 NPU chips" in text
    assert "prefill server-1, server-2; decode server-3, server-4" in text
    assert "0.0.0.0:18123" in text and f"Coordinator predict {plan.coordinator.predict_port}" in text
    assert "configs: /srv/conf" in text and "logs:    stdout" in text
    assert f"TLS:     {plan.tls.mode}" in text


def test_the_first_steps_name_this_runs_port_and_parse_as_shell_commands() -> None:
    plan = plan_for(Settings(api_port=18124))
    lines = first_steps(plan, Settings(api_port=18124), "supervisor-pd")
    chat, status, metrics = (shlex.split(line) for line in lines[1:])
    assert chat[:3] == ["curl", "-N", "http://localhost:18124/v1/chat/completions"]
    assert json.loads(chat[chat.index("-d") + 1])["messages"][0]["content"] == "hi"
    assert status == ["supervisor-pd", "status"]
    assert metrics == ["curl", "http://localhost:18124/metrics"]


def test_the_first_steps_follow_the_address_tls_and_state_folder(tmp_path: Path) -> None:
    settings = Settings(
        api_port=18125, api_host="127.0.0.2", api_tls_cert=tmp_path / "cert.pem", state_dir=tmp_path / "state"
    )
    lines = first_steps(plan_for(settings), settings, "/opt/venv/bin/supervisor-pd")
    assert "https://127.0.0.2:18125/v1/chat/completions" in lines[1]
    # Another shell would not find this run's socket: the status command names the port.
    assert shlex.split(lines[2]) == ["/opt/venv/bin/supervisor-pd", "status", "--url", "https://127.0.0.2:18125"]


def test_the_first_steps_come_once_right_after_the_first_ready() -> None:
    stack = Stack()
    stack.engine.first_ready_lines = ["try it:", "  curl ..."]
    stack.bring_up()
    first = stack.fx.logs.index(next(line for line in stack.fx.logs if line.startswith("service ready after")))
    assert stack.fx.logs[first + 1 : first + 3] == ["try it:", "  curl ..."]
    stack.exit("server-1")  # a recovery later: no second hint
    stack.gone("server-1")
    stack.advance(2)
    stack.up("server-1")
    stack.readiness_round()
    assert "service ready again" in stack.fx.logs
    assert stack.fx.logs.count("try it:") == 1


def test_no_first_steps_when_the_service_never_became_ready() -> None:
    stack = Stack(ready_seconds=10.0)
    stack.engine.first_ready_lines = ["try it:"]
    stack.tick()
    stack.advance(11)  # the ready deadline: the service gives up
    assert stack.engine.exit_code.name == "STARTUP_DEADLINE"
    assert "try it:" not in stack.fx.logs
