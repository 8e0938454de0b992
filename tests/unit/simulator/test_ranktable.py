"""The simulated Controller's RankTableLoader (supervisor_pd/simulator/controller/ranktable.py).

Each rejection case breaks one rule of MindIE-Motor's RankTableLoader (cited in the module) in an
otherwise valid file; the acceptance cases pin down what the real loader lets through.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from supervisor_pd.simulator.controller.ranktable import (
    LoadedRankTable,
    RankTableRejected,
    load_ranktable,
    load_ranktable_file,
    stoi,
)


def device(n: int) -> dict[str, str]:
    return {"device_id": str(n), "device_ip": f"29.1.1.{n + 1}", "rank_id": str(n), "device_logical_id": str(n)}


def server(n: int) -> dict[str, Any]:
    base = 2000 + 4 * n
    return {
        "server_id": "127.0.0.1",
        "server_ip": "127.0.0.1",
        "predict_port": str(base),
        "mgmt_port": str(base + 1),
        "metric_port": str(base + 2),
        "inter_comm_port": str(base + 3),
        "device": [device(2 * n), device(2 * n + 1)],
    }


VALID: dict[str, Any] = {
    "version": "1.0",
    "server_group_list": [
        {"group_id": "2", "server_count": 2, "server_list": [server(0), server(1)]},
        {"group_id": "1", "server_count": 1, "server_list": [{"server_ip": "127.0.0.1"}]},
        {"group_id": "0", "server_count": 1, "server_list": [{"server_ip": "127.0.0.1"}]},
    ],
    "status": "completed",
}


def changed(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    change(data)
    return data


def servers(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["server_group_list"][0]["server_list"]


def first(data: dict[str, Any]) -> dict[str, Any]:
    return servers(data)[0]


def first_device(data: dict[str, Any]) -> dict[str, Any]:
    return first(data)["device"][0]


def groups(*items: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["server_group_list"] = list(items)

    return change


SERVERS = {"group_id": "2", "server_list": [server(0), server(1)]}
COORDINATOR = {"group_id": "0", "server_list": [{"server_ip": "127.0.0.1"}]}
CONTROLLER = {"group_id": "1", "server_list": [{"server_ip": "127.0.0.1"}]}


def test_a_valid_file_loads_every_server_in_order() -> None:
    loaded = load_ranktable(copy.deepcopy(VALID))
    assert loaded == LoadedRankTable(
        servers=(server(0), server(1)), super_pods={}, coordinators=("127.0.0.1",), warnings=()
    )


# (rule, change, words the reason holds)
REJECTED: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("empty object", lambda d: d.clear(), "empty JSON value"),
    ("no server_group_list", lambda d: d.pop("server_group_list"), "server_group_list"),
    ("server_group_list not an array", lambda d: d.update(server_group_list={"0": COORDINATOR}), "server_group_list"),
    ("one group", groups(COORDINATOR), "2 to 3 groups"),
    ("four groups", groups(SERVERS, CONTROLLER, COORDINATOR, {"group_id": "3", "server_list": []}), "2 to 3 groups"),
    ("group before 0 not an object", groups(["0"], COORDINATOR, SERVERS), "server_group_list[0]"),
    ("group_id a number", groups({"group_id": 0, "server_list": []}, SERVERS), "server_group_list[0]"),
    ("group_id empty", groups({"group_id": "", "server_list": []}, COORDINATOR, SERVERS), "server_group_list[0]"),
    ("group_id over 4096 bytes", groups({"group_id": "1" * 4097}, COORDINATOR, SERVERS), "server_group_list[0]"),
    ("no group 0", groups(SERVERS, CONTROLLER), 'no group with group_id "0"'),
    (
        "coordinator server_list not an array",
        groups({"group_id": "0", "server_list": {"server_ip": "127.0.0.1"}}, SERVERS),
        "0 to 2 entries",
    ),
    (
        "three coordinators",
        groups({"group_id": "0", "server_list": [{"server_ip": "127.0.0.1"}] * 3}, SERVERS),
        "0 to 2 entries",
    ),
    ("coordinator not an object", groups({"group_id": "0", "server_list": ["127.0.0.1"]}, SERVERS), "entry 0"),
    (
        "coordinator ip 0.0.0.0",
        groups({"group_id": "0", "server_list": [{"server_ip": "0.0.0.0"}]}, SERVERS),
        "entry 0",
    ),
    (
        "group_id std::stoi cannot read",
        groups(COORDINATOR, {"group_id": "one", "server_list": []}, SERVERS),
        "'one' is not a number",
    ),
    ("group_id beyond int", groups(COORDINATOR, {"group_id": "9" * 12, "server_list": []}), "out of the int range"),
    ("no server group", groups(COORDINATOR, CONTROLLER), "no Server group"),
    ("server_list missing", groups(COORDINATOR, {"group_id": "2"}), "0 to 96 Servers"),
    ("97 servers", groups(COORDINATOR, {"group_id": "2", "server_list": [server(0)] * 97}), "0 to 96 Servers"),
    ("server not an object", lambda d: servers(d).append("127.0.0.1"), "server 2: is not an object"),
    ("server_ip missing", lambda d: first(d).pop("server_ip"), "server_ip must be a valid IP"),
    ("server_ip a name", lambda d: first(d).update(server_ip="localhost"), "server_ip must be a valid IP"),
    ("server_ip 0.0.0.0", lambda d: first(d).update(server_ip="0.0.0.0"), "server_ip must be a valid IP"),
    ("server_ip ::", lambda d: first(d).update(server_ip="::"), "server_ip must be a valid IP"),
    ("server_ip leading zero", lambda d: first(d).update(server_ip="127.0.0.01"), "server_ip must be a valid IP"),
    ("server_id not an ip", lambda d: first(d).update(server_id="node-1"), "server_id must be a valid IP"),
    ("port a number", lambda d: first(d).update(predict_port=2000), "predict_port must be a string"),
    ("port null", lambda d: first(d).update(metric_port=None), "metric_port must be a string"),
    ("port below 1024", lambda d: first(d).update(mgmt_port="1023"), "mgmt_port '1023' is outside [1024, 65535]"),
    ("port above 65535", lambda d: first(d).update(inter_comm_port="65536"), "outside [1024, 65535]"),
    ("port no digit", lambda d: first(d).update(predict_port="port"), "'port' is not a number"),
    ("port full-width digits", lambda d: first(d).update(predict_port="２０００"), "is not a number"),
    ("port beyond int", lambda d: first(d).update(predict_port="99999999999"), "out of the int range"),
    ("super_pod_id no digit", lambda d: first(d).update(super_pod_id="pod"), "super_pod_id 'pod' is not a number"),
    ("super_pod_id a number", lambda d: first(d).update(super_pod_id=1), "super_pod_id must be a string"),
    ("super_pod_id beyond int", lambda d: first(d).update(super_pod_id="2147483648"), "out of the int range"),
    ("device missing", lambda d: first(d).pop("device"), "1 to 128 devices"),
    ("no device", lambda d: first(d).update(device=[]), "1 to 128 devices"),
    ("129 devices", lambda d: first(d).update(device=[device(0)] * 129), "1 to 128 devices"),
    ("device not an object", lambda d: first(d)["device"].append("0"), "device 2: is not an object"),
    ("device_ip invalid", lambda d: first_device(d).update(device_ip="29.1.1"), "device_ip must be a valid IP"),
    ("device_id missing", lambda d: first_device(d).pop("device_id"), "device_id must be a string"),
    ("device_logical_id empty", lambda d: first_device(d).update(device_logical_id=""), "device_logical_id must be"),
    ("rank_id a number", lambda d: first_device(d).update(rank_id=0), "rank_id must be a string"),
    ("device_id above 2048", lambda d: first_device(d).update(device_id="2049"), "'2049' is outside [0, 2048]"),
    ("rank_id negative", lambda d: first_device(d).update(rank_id="-1"), "rank_id '-1' is outside [0, 2048]"),
    ("device_logical_id no digit", lambda d: first_device(d).update(device_logical_id="x"), "'x' is not a number"),
    ("super_device_id above 2^30", lambda d: first_device(d).update(super_device_id=str((1 << 30) + 1)), "outside"),
    ("super_device_id a number", lambda d: first_device(d).update(super_device_id=5), "must be a string"),
    (
        "super_pod_list member server_id not a string",
        lambda d: d["server_group_list"][0].update(super_pod_list=[{"super_pod_id": "0", "server_list": [{}]}]),
        "parsing failed",
    ),
    (
        "super_pod_id of a pod with members not a string",
        lambda d: d["server_group_list"][0].update(
            super_pod_list=[{"super_pod_id": 0, "server_list": [{"server_id": "127.0.0.1"}]}]
        ),
        "parsing failed",
    ),
    (
        # "3" is the group checked; "2", the group read, is not checked and cannot be parsed.
        "group 2 unreadable behind group 3",
        groups(COORDINATOR, {"group_id": "3", "server_list": []}, {"group_id": "2", "server_list": [{"x": 1}]}),
        "parsing failed: 'server_id' is missing",
    ),
]


@pytest.mark.parametrize(("change", "words"), [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED])
def test_a_file_breaking_one_rule_is_rejected(change: Callable[[dict[str, Any]], Any], words: str) -> None:
    with pytest.raises(RankTableRejected) as caught:
        load_ranktable(changed(change))
    assert words in str(caught.value)


@pytest.mark.parametrize("value", [None, [], {}, "text", 3])
def test_an_empty_or_non_object_value_is_rejected(value: Any) -> None:
    with pytest.raises(RankTableRejected):
        load_ranktable(value)


def test_heterogeneous_clusters_need_a_known_hardware_type() -> None:
    data = changed(lambda d: None)
    with pytest.raises(RankTableRejected, match="hardware_type"):
        load_ranktable(data, heterogeneous=True)
    for entry in servers(data):
        entry["hardware_type"] = "800I A2(32G)"
    assert len(load_ranktable(data, heterogeneous=True).servers) == 2
    servers(data)[1]["hardware_type"] = "800I A3"
    with pytest.raises(RankTableRejected, match="server 1: hardware_type"):
        load_ranktable(data, heterogeneous=True)


def test_single_node_mode_does_not_look_at_devices() -> None:
    data = changed(lambda d: [entry.pop("device") for entry in servers(d)])
    with pytest.raises(RankTableRejected, match="devices"):
        load_ranktable(data)
    assert len(load_ranktable(data, pd_separate=False).servers) == 2


# (what MindIE lets through, change)
ACCEPTED: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("std::stoi ignores leading space, a sign and a tail", lambda d: first(d).update(predict_port=" +2000 tail")),
    ("IPv6 addresses", lambda d: first(d).update(server_ip="::1", server_id="fe80::1")),
    ("super_pod_id any int", lambda d: first(d).update(super_pod_id="-7")),
    ("super_device_id at 2^30", lambda d: first_device(d).update(super_device_id=str(1 << 30))),
    ("ids at 2048", lambda d: first_device(d).update(device_id="2048", rank_id="2048", device_logical_id="2048")),
    ("no optional port", lambda d: [first(d).pop(key) for key in ("predict_port", "metric_port", "inter_comm_port")]),
    ("a negative group id is skipped", groups(COORDINATOR, {"group_id": "-1", "server_list": "any"}, SERVERS)),
    ("a group after 0 and 2 is never looked at", groups(COORDINATOR, SERVERS, None)),
    ("nor one with a number for group_id", groups(SERVERS, COORDINATOR, {"group_id": 7})),
    ("extra fields", lambda d: first(d).update(hardware_type=3, anything={"x": 1})),
    (
        "a pod with no member never converts its id",
        lambda d: d["server_group_list"][0].update(super_pod_list=[{"super_pod_id": 5, "server_list": []}]),
    ),
]


@pytest.mark.parametrize("change", [case[1] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_what_the_real_loader_lets_through_loads(change: Callable[[dict[str, Any]], Any]) -> None:
    assert len(load_ranktable(changed(change)).servers) == 2


def test_a_repeated_node_id_loads_no_server() -> None:
    data = changed(lambda d: servers(d).append(copy.deepcopy(server(0))))
    loaded = load_ranktable(data)
    assert loaded.servers == ()
    assert any("non-unique node id '127.0.0.12001'" in warning for warning in loaded.warnings)


def test_the_node_id_joins_ip_and_port_without_a_separator() -> None:
    def collide(d: dict[str, Any]) -> None:
        servers(d)[0].update(server_ip="10.0.0.1", server_id="10.0.0.1", mgmt_port="12001")
        servers(d)[1].update(server_ip="10.0.0.11", server_id="10.0.0.11", mgmt_port="2001")

    assert load_ranktable(changed(collide)).servers == ()


def test_an_absent_mgmt_port_is_the_configured_one() -> None:
    data = changed(lambda d: [entry.pop("mgmt_port") for entry in servers(d)])
    assert load_ranktable(data).servers == ()  # both ids are 127.0.0.1 + "1026"
    servers(data)[1]["mgmt_port"] = "1026"
    assert load_ranktable(data, default_mgmt_port="1027").servers == tuple(servers(data))
    # An invalid configured port ends the parse with no Server, as AllocateNodeId does.
    assert load_ranktable(data, default_mgmt_port="80").servers == ()


def test_only_group_2_is_read() -> None:
    data = changed(lambda d: d["server_group_list"][0].update(group_id="3"))
    loaded = load_ranktable(data)
    assert loaded.servers == ()
    assert any('no group with group_id "2"' in warning for warning in loaded.warnings)


def test_few_servers_and_no_coordinator_are_warnings() -> None:
    data = changed(lambda d: (servers(d).pop(), d["server_group_list"][2].update(server_list=[])))
    loaded = load_ranktable(data)
    assert len(loaded.servers) == 1
    assert loaded.coordinators == ()
    assert loaded.warnings == ("1 Server(s) loaded, fewer than 2", "the Coordinator list is empty")


def test_super_pods_map_server_ids() -> None:
    pods = [{"super_pod_id": "7", "server_list": [{"server_id": "127.0.0.1"}]}]
    loaded = load_ranktable(changed(lambda d: d["server_group_list"][0].update(super_pod_list=pods)))
    assert loaded.super_pods == {"127.0.0.1": "7"}


def test_files_that_are_not_json_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "global_ranktable.json"
    with pytest.raises(RankTableRejected, match="cannot read"):
        load_ranktable_file(path)
    for text in ("", "{", json.dumps(VALID).replace('"1.0"', "NaN")):
        path.write_text(text)
        with pytest.raises(RankTableRejected, match="is not JSON"):
            load_ranktable_file(path)
    path.write_text(json.dumps(VALID))
    assert len(load_ranktable_file(path).servers) == 2


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("  -7", -7), ("+3x", 3), ("0012", 12), ("2147483647", 2**31 - 1), ("-2147483648", -(2**31))],
)
def test_stoi_reads_like_the_cpp_library(text: str, value: int) -> None:
    assert stoi(text) == value


@pytest.mark.parametrize("text", ["", " ", "x1", "+", "٣", "2147483648", "-2147483649"])
def test_stoi_refuses_what_the_cpp_library_throws_on(text: str) -> None:
    with pytest.raises(Exception, match=r"not a number|out of the int range"):
        stoi(text)
