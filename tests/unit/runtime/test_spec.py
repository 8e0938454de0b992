from pathlib import Path

from supervisor_pd.plan.planner import make_plan
from supervisor_pd.runtime.spec import Kind, build_specs
from supervisor_pd.settings import Settings
from tests import factories

BASE = {
    "PATH": "/usr/bin",
    "HCCL_EXEC_TIMEOUT": "90",
    "SUPERVISOR_PD_API_TOKEN": "secret",
    "MIES_CONTAINER_IP": "10.0.0.9",
    "MINDIE_MS_COORDINATOR_PORT": "tcp://10.96.0.1:1026",
    "POD_IP": "10.0.0.9",
    "MINDX_TASK_ID": "job-7",
    "MINDX_SERVER_IP": "10.0.0.2",
}


def specs(**settings):  # type: ignore[no-untyped-def]
    plan = make_plan(
        factories.facts(factories.chips(8, per_node=4)),
        factories.inputs(),
        Settings(**settings),
        factories.FakeChecker(),
    )
    return {s.name: s for s in build_specs(plan, Settings(**settings), BASE, Path("/out"), Path("/state"))}


def test_start_order_and_commands() -> None:
    built = specs()
    assert list(built) == ["server-1", "server-2", "server-3", "server-4", "coordinator", "controller"]
    assert built["server-2"].argv == ("mindie_llm_server", "--config-file", "/out/config2.json")
    assert built["coordinator"].argv == ("mindie_motor_coordinator", "127.0.0.1", "127.0.0.1")
    assert built["controller"].argv == ("mindie_motor_controller",)
    assert built["controller"].cwd == Path("/state/controller")


def test_each_server_gets_its_own_environment() -> None:
    built = specs()
    one, two = built["server-1"].env, built["server-2"].env
    assert (one["ATB_SHARE_MEMORY_NAME_SUFFIX"], two["ATB_SHARE_MEMORY_NAME_SUFFIX"]) == ("1", "2")
    assert one["MIES_SERVICE_MONITOR_MODE"] == "1"
    assert one["MIES_CONTAINER_IP"] == "127.0.0.1"  # the plan's address, not the pod's
    assert one["HCCL_EXEC_TIMEOUT"] == "90"  # the user's value
    assert one["HCCL_RDMA_RETRY_CNT"] == "7"  # the reference default
    assert one["MINDIE_LOG_LEVEL"] == "INFO"
    assert one is not two


def test_secrets_and_colliding_variables_are_withheld() -> None:
    built = specs()
    for spec in built.values():
        assert "SUPERVISOR_PD_API_TOKEN" not in spec.env
    assert "MINDIE_MS_COORDINATOR_PORT" not in built["controller"].env
    assert "MINDIE_MS_COORDINATOR_PORT" in built["server-1"].env
    # With both, a MindIE Controller waits for ClusterD's ranktable and writes it over ours.
    assert not {"MINDX_TASK_ID", "MINDX_SERVER_IP"} & set(built["controller"].env)
    assert "ATB_SHARE_MEMORY_NAME_SUFFIX" not in built["controller"].env
    assert built["controller"].env["GLOBAL_RANK_TABLE_FILE_PATH"] == "/out/global_ranktable.json"
    assert built["coordinator"].env["MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH"] == "/out/ms_coordinator.json"


def test_health_endpoints() -> None:
    built = specs()
    server = built["server-1"]
    assert [c.path for c in server.up] == ["/v1/config", "/v1/status"]
    assert server.live.path == "/v1/status"  # never /v2/health/ready
    assert server.ready is not None and server.ready.path == "/v2/health/ready"
    assert built["coordinator"].live.path == "/v1/health"
    assert built["controller"].kind is Kind.CONTROLLER and built["controller"].ready is None


def test_commands_can_be_replaced() -> None:
    built = specs(server_command="/opt/mindie/bin/mindie_llm_server --expert-parallel true")
    assert built["server-1"].argv[:3] == ("/opt/mindie/bin/mindie_llm_server", "--expert-parallel", "true")
