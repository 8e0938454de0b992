from ipaddress import IPv4Address

import orjson
import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.formats.ranktable import check_global_ranktable
from supervisor_pd.plan.model import PortOrigin, Role
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.platform.facts import DeviceType
from supervisor_pd.settings import Settings
from tests import factories
from tests.factories import FakeChecker


def plan_for(inputs=None, settings=None, chips=None, checker=None, **facts):  # type: ignore[no-untyped-def]
    return make_plan(
        factories.facts(chips or factories.chips(8, per_node=4), **facts),
        inputs or factories.inputs(),
        settings or Settings(),
        checker or FakeChecker(),
    )


def load(plan, name: str) -> dict:  # type: ignore[no-untyped-def]
    return orjson.loads(plan.file(name).content)


def test_every_port_is_distinct() -> None:
    plan = plan_for(
        chips=factories.chips(16, per_node=8),
        inputs=factories.inputs(
            template=lambda d: d["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0].update(worldSize=1)
        ),
    )
    ports = [p.port for p in plan.ports]
    assert len(ports) == len(set(ports)) == 16 * 4 + 5 + 2 + 1


def test_server_files_carry_ports_devices_and_unknown_fields() -> None:
    inputs = factories.inputs(template=lambda d: d.update(CustomTop={"x": [1, 2]}))
    plan = plan_for(inputs=inputs)
    third = load(plan, "config3.json")
    assert third["ServerConfig"]["port"] == plan.servers[2].ports.port
    assert third["ServerConfig"]["inferMode"] == "dmi"
    assert third["BackendConfig"]["npuDeviceIds"] == [[4, 5]]
    assert third["CustomTop"] == {"x": [1, 2]}
    # key order of the user's file is kept
    assert list(third) == list(inputs.template.raw)


def test_reference_default_controller_port_is_moved_off_the_coordinator() -> None:
    # MindIE's default ms_controller.json uses 1026 for http_server.port, the Coordinator's manage_port.
    inputs = factories.inputs(controller=lambda d: d["http_server"].update(port=1026))
    plan = plan_for(inputs=inputs)
    moved = [p for p in plan.ports if p.origin is PortOrigin.MOVED]
    assert [(p.owner, p.field, p.requested) for p in moved] == [("controller", "http_server.port", 1026)]
    assert plan.controller.port == moved[0].port != 1026
    assert load(plan, "ms_controller.json")["http_server"]["port"] == plan.controller.port


def test_linked_fields_agree() -> None:
    inputs = factories.inputs(controller=lambda d: d.update(mindie_ms_coordinator_port=1999, controller_alarm_port=7))
    plan = plan_for(inputs=inputs)
    controller, coordinator = load(plan, "ms_controller.json"), load(plan, "ms_coordinator.json")
    assert controller["mindie_ms_coordinator_port"] == int(coordinator["http_config"]["manage_port"])
    assert controller["mindie_ms_coordinator_external_port"] == int(coordinator["http_config"]["external_port"])
    assert controller["controller_alarm_port"] == int(coordinator["http_config"]["alarm_port"])
    assert (
        controller["deploy_mode"]
        == coordinator["digs_scheduler_config"]["deploy_mode"]
        == "pd_disaggregation_single_container"
    )
    assert isinstance(coordinator["http_config"]["predict_port"], str)
    written = {(s.file, s.field): s for s in plan.settings_written}
    assert written[("ms_controller.json", "mindie_ms_coordinator_port")].previous == "1999"


def test_generation_off_keeps_user_ports_and_repairs_clashes() -> None:
    servers = {}
    for n in range(1, 5):
        raw = factories.sample("config.json")
        raw["ServerConfig"].update(
            port=3000 + 10 * n, managementPort=3001 + 10 * n, metricsPort=3002 + 10 * n, interCommPort=3003 + 10 * n
        )
        servers[n] = raw
    servers[4]["ServerConfig"]["metricsPort"] = 3012  # duplicates server 1's metrics port
    plan = plan_for(inputs=factories.inputs(servers=servers), settings=Settings(gen_server_port=False))
    assert plan.servers[0].ports.port == 3010
    assert plan.servers[3].ports.metrics != 3012
    moved = [p for p in plan.ports if p.origin is PortOrigin.MOVED]
    assert [(p.owner, p.field) for p in moved] == [("server-4", "metricsPort")]


def test_generation_off_needs_a_file_per_server() -> None:
    servers = {n: factories.sample("config.json") for n in (1, 2, 3)}
    with pytest.raises(InputError) as caught:
        plan_for(inputs=factories.inputs(servers=servers), settings=Settings(gen_server_port=False))
    assert caught.value.where.endswith("config4.json")
    assert "4 Servers" in caught.value.problem


def test_max_output_longer_than_sequence_is_refused() -> None:
    inputs = factories.inputs(template=lambda d: d["BackendConfig"]["ScheduleConfig"].update(maxIterTimes=9999))
    with pytest.raises(InputError, match="max output length exceeds"):
        plan_for(inputs=inputs)


def test_pod_ip_becomes_the_predict_and_controller_address() -> None:
    plan = plan_for(settings=Settings(pod_ip=IPv4Address("10.1.2.3")))
    assert plan.coordinator.predict_ip == "10.1.2.3"
    assert plan.controller.ip == "10.1.2.3"
    assert plan.coordinator.manage_ip == "127.0.0.1"
    ranktable = load(plan, "global_ranktable.json")
    groups = {g["group_id"]: g for g in ranktable["server_group_list"]}
    assert groups["1"]["server_list"] == [{"server_ip": "10.1.2.3"}]
    assert groups["0"]["server_list"] == [{"server_ip": "127.0.0.1"}]


def test_pod_ip_not_on_this_host_is_named() -> None:
    with pytest.raises(InputError) as caught:
        plan_for(settings=Settings(pod_ip=IPv4Address("10.9.9.9")), checker=FakeChecker(foreign={"10.9.9.9"}))
    assert caught.value.where == "POD_IP"


def test_a3_ranktable_has_super_pod_fields() -> None:
    chips = tuple(
        c.__class__(**{**c.__dict__, "super_device_id": str(100 + c.phy_id)})
        for c in factories.chips(16, per_node=4, per_npu=2)
    )
    facts = factories.facts(
        chips, nodes={n: f"{n * 40}-{n * 40 + 39}" for n in range(4)}, cpus="0-159", device_type=DeviceType.A3
    )
    facts = facts.__class__(**{**facts.__dict__, "super_pod_id": "7"})
    plan = make_plan(facts, factories.inputs(), Settings(), FakeChecker())
    ranktable = load(plan, "global_ranktable.json")
    group = ranktable["server_group_list"][0]
    assert group["super_pod_list"] == [{"super_pod_id": "7", "server_list": [{"server_id": "127.0.0.1"}]}]
    device = group["server_list"][0]["device"][1]
    assert device == {
        "device_id": "1",
        "device_ip": "29.1.1.2",
        "super_device_id": "101",
        "rank_id": "1",
        "device_logical_id": "1",
    }
    assert check_global_ranktable(ranktable) == []


def test_roles_and_ranks_follow_ranktable_order() -> None:
    plan = plan_for(settings=Settings(p_rate=1, d_rate=3))
    assert [s.role for s in plan.servers] == [Role.PREFILL, Role.DECODE, Role.DECODE, Role.DECODE]
    assert [d.rank_id for s in plan.servers for d in s.devices] == list(range(8))
    assert load(plan, "ms_controller.json")["default_p_rate"] == 1


def test_planning_is_deterministic() -> None:
    assert plan_for() == plan_for()
