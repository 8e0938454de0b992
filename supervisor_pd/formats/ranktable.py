"""The global ranktable (reference §5.1), the Controller's rules for it (§5.3), and the
Ascend Operator's per-server hccl.json (§5.2)."""

from __future__ import annotations

from ipaddress import AddressValueError, IPv4Address
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from supervisor_pd.formats.common import OpenModel

SERVER_GROUP = "2"
CONTROLLER_GROUP = "1"
COORDINATOR_GROUP = "0"


class _Exact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RankDevice(_Exact):
    device_id: str
    device_ip: str
    super_device_id: str | None = None
    rank_id: str
    device_logical_id: str


class RankServer(_Exact):
    server_id: str
    server_ip: str
    predict_port: str
    mgmt_port: str
    metric_port: str
    inter_comm_port: str
    device: list[RankDevice]


class Endpoint(_Exact):
    server_ip: str


class SuperPodMember(_Exact):
    server_id: str


class SuperPod(_Exact):
    super_pod_id: str
    server_list: list[SuperPodMember]


class ServerGroup(_Exact):
    group_id: str
    server_count: int
    server_list: list[RankServer] | list[Endpoint]
    super_pod_list: list[SuperPod] | None = None


class GlobalRankTable(_Exact):
    """What the single-container generator writes: version, groups 2/1/0, status."""

    version: str = "1.0"
    server_group_list: list[ServerGroup]
    status: str = "completed"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


# --- the Controller's RankTableLoader rules (§5.3) -------------------------------------

MAX_SERVER_NODES = 96


def _is_ip(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        return not IPv4Address(value).is_unspecified
    except AddressValueError:
        return False


def _int_text(value: Any, low: int, high: int) -> bool:
    return isinstance(value, str) and value.isdigit() and low <= int(value) <= high


def check_global_ranktable(data: Any) -> list[str]:
    """The problems the Controller's loader would find, in its evaluation order (empty = valid)."""
    if not isinstance(data, dict):
        return ["the ranktable is not a JSON object"]
    groups = data.get("server_group_list")
    if not isinstance(groups, list) or not 2 <= len(groups) <= 3:
        return ["server_group_list must be an array of 2 or 3 groups"]
    problems: list[str] = []
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("group_id"), str) or not group["group_id"]:
            problems.append(f"server_group_list[{index}] needs a non-empty string group_id")
    if problems:
        return problems
    coordinator = next((g for g in groups if g["group_id"] == COORDINATOR_GROUP), None)
    if coordinator is None:
        return ['no group with group_id "0" (Coordinator)']
    entries = coordinator.get("server_list")
    if not isinstance(entries, list) or len(entries) > 2:
        problems.append('group "0": server_list must hold 0 to 2 entries')
    else:
        for entry in entries:
            if not isinstance(entry, dict) or not _is_ip(entry.get("server_ip")):
                problems.append('group "0": every entry needs a valid server_ip')
    server_group = next((g for g in groups if g["group_id"].isdigit() and int(g["group_id"]) >= 2), None)
    if server_group is None:
        return [*problems, 'no Server group (group_id "2")']
    servers = server_group.get("server_list")
    if not isinstance(servers, list) or len(servers) > MAX_SERVER_NODES:
        return [*problems, f'group "2": server_list must hold 0 to {MAX_SERVER_NODES} Servers']
    keys: set[tuple[str, str]] = set()
    for position, server in enumerate(servers):
        problems.extend(_check_server(position, server))
        if isinstance(server, dict):
            key = (str(server.get("server_ip")), str(server.get("mgmt_port")))
            if key in keys:
                problems.append(f'group "2": server {position}: non-unique node id {key[0]}:{key[1]}')
            keys.add(key)
    return problems


def _check_server(position: int, server: Any) -> list[str]:
    where = f'group "2": server {position}'
    if not isinstance(server, dict):
        return [f"{where} is not an object"]
    problems = [
        f"{where}: {key} must be a valid IP" for key in ("server_ip", "server_id") if not _is_ip(server.get(key))
    ]
    for key in ("predict_port", "mgmt_port", "metric_port", "inter_comm_port"):
        if key in server and not _int_text(server[key], 1024, 65535):
            problems.append(f'{where}: {key} must be a string port "1024".."65535"')
    if "super_pod_id" in server and not _int_text(server["super_pod_id"], 0, 2**31):
        problems.append(f"{where}: super_pod_id must be a number written as a string")
    devices = server.get("device")
    if not isinstance(devices, list) or not 1 <= len(devices) <= 128:
        return [*problems, f"{where}: device must be an array of 1 to 128 devices"]
    for number, device in enumerate(devices):
        at = f"{where}: device {number}"
        if not isinstance(device, dict):
            problems.append(f"{at} is not an object")
            continue
        if not _is_ip(device.get("device_ip")):
            problems.append(f"{at}: device_ip must be a valid IP")
        for key in ("device_id", "device_logical_id", "rank_id"):
            if not _int_text(device.get(key), 0, 2048):
                problems.append(f"{at}: {key} must be a number 0..2048 written as a string")
        if "super_device_id" in device and not _int_text(device["super_device_id"], 0, 2**30):
            problems.append(f"{at}: super_device_id must be a number 0..2^30 written as a string")
    return problems


# --- the Ascend Operator's hccl.json (A3) ----------------------------------------------


class HcclDevice(OpenModel):
    device_id: StrictStr
    device_ip: StrictStr | None = None
    super_device_id: StrictStr | None = None
    rank_id: StrictStr | None = None


class HcclServer(OpenModel):
    server_id: StrictStr | None = None
    container_ip: StrictStr | None = None  # the pod's IP: how MindIE finds its own entry
    device: list[HcclDevice] = Field(default_factory=list)


class HcclSuperPod(OpenModel):
    super_pod_id: StrictStr


class HcclJson(OpenModel):
    status: StrictStr
    version: StrictStr | None = None
    server_list: list[HcclServer] = Field(default_factory=list)
    super_pod_list: list[HcclSuperPod] | None = None
