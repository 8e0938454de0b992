"""What the Controller knows about each Server, and the messages it builds (reference §3.4-3.6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from supervisor_pd.simulator.controller.ranktable import LoadedRankTable, stoi

NUM_INSTANCES_SINGLE_CONTAINER = 16
GROUP_SIZE = 16
ROLE_CODES = {"prefill": 80, "decode": 68, "flex": 70}
LABELS = {"prefill": 2, "decode": 3, "flex": 4}
STATUS_FIELDS = (
    "waitingRequestNum",
    "runningRequestNum",
    "swappedRequestNum",
    "freeNpuBlockNums",
    "freeCpuBlockNums",
    "totalNpuBlockNums",
    "totalCpuBlockNums",
)


@dataclass
class Node:
    id: int
    ip: str
    port: int
    mgmt_port: int
    metric_port: int
    inter_comm_port: int | None
    devices: list[dict[str, Any]]
    super_pod_id: str | None = None
    role: str | None = None
    group: int = 0
    peers: list[int] = field(default_factory=list)
    healthy: bool = False
    recovering: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    total_slots: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return self.ip, self.mgmt_port

    def describe(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"server_ip": self.ip, "id": self.id, "host_ip": self.ip, "device": self.devices}
        if self.super_pod_id is not None:
            entry["super_pod_id"] = self.super_pod_id
        return entry

    def link_ok(self, peer_id: int) -> bool:
        peers = self.status.get("linkStatus", {}).get("peers", [])
        return any(p.get("target") == peer_id and p.get("link") == "ok" for p in peers if isinstance(p, dict))


def nodes_from_ranktable(loaded: LoadedRankTable, defaults: dict[str, int]) -> list[Node]:
    """The loaded Servers of group "2", in ranktable order; ids count from 0 (reference §5.3 rule 5).
    A Server's super pod comes from its group's super_pod_list (RankTableLoader.cpp:309-311)."""
    nodes = []
    for index, server in enumerate(loaded.servers):
        comm = server.get("inter_comm_port")
        nodes.append(
            Node(
                id=index,
                ip=server["server_ip"],
                port=stoi(server.get("predict_port", str(defaults["port"]))),
                mgmt_port=stoi(server.get("mgmt_port", str(defaults["mgmt_port"]))),
                metric_port=stoi(server.get("metric_port", str(defaults["metric_port"]))),
                inter_comm_port=stoi(comm) if comm else None,
                devices=[dict(d) for d in server.get("device", [])],
                super_pod_id=loaded.super_pods.get(server["server_id"]),
            )
        )
    return nodes


def split_roles(nodes: list[Node], p_rate: int, d_rate: int) -> bool:
    """InstanceRoleManager::AssignRoleByDefiniteRatio, then DefaultGroupGenerator::GenerateGroups
    (MindIE-Motor controller/role_manager, node_scheduler/group_generator).

    ProportionCalculator::InitPdBestRatioWithExternInput hands out the instances one at a time:
    to prefill while the prefill weight is not above the decode weight, else to decode, each
    prefill adding the decode rate and each decode the prefill rate (the caller passes them
    crossed). The first ones in ranktable order are prefill. GenerateGroups refuses more than
    LIMIT_MAX (16) instances outside multi-node mode: False, and no role is decided. Every P
    is peered with every D."""
    count = len(nodes)
    if count > GROUP_SIZE:
        return False
    prefill = decode = 0
    prefill_weight = decode_weight = 0
    while prefill + decode < count:
        if prefill_weight <= decode_weight:
            prefill, prefill_weight = prefill + 1, prefill_weight + d_rate
        else:
            decode, decode_weight = decode + 1, decode_weight + p_rate
    for position, node in enumerate(nodes):
        node.role = "prefill" if position < prefill else "decode"
        node.group = 0
    for node in nodes:
        other = "decode" if node.role == "prefill" else "prefill"
        node.peers = [peer.id for peer in nodes if peer.role == other]
    return True


def role_body(node: Node, nodes: dict[int, Node], position: int, exclude: int | None = None) -> dict[str, Any]:
    """BuildPostRoleReqBodyByVec: the node itself as `local`, its peers as `peers`."""
    local = node.describe() | {
        "instance_idx_in_pod": position,
        "num_instances_per_pod": NUM_INSTANCES_SINGLE_CONTAINER,
        "is_single_container": True,
    }
    peers = [nodes[peer].describe() for peer in node.peers if peer != exclude and peer in nodes]
    return {"local": local, "peers": peers}


def check_config(data: Any) -> str | None:
    """The Controller's checks of a Server's /v1/config reply (ServerRequestHandler L37-40)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    rules = (("maxSeqLen", 0, 4294967295), ("maxOutputLen", 1, 4294967294), ("cacheBlockSize", 1, 128))
    for key, low, high in rules:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"{key} must be an integer in [{low}, {high}]"
    if not isinstance(data.get("modelName"), str) or not data["modelName"]:
        return "modelName must be a non-empty string"
    return None


def check_status(data: Any) -> str | None:
    """The Controller's checks of a Server's /v1/status reply (L160-230)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    service, resource = data.get("service"), data.get("resource")
    if not isinstance(service, dict) or service.get("roleStatus") not in ("RoleUnknown", "RoleSwitching", "RoleReady"):
        return "service.roleStatus is missing or unknown"
    if service.get("currentRole") not in ("prefill", "decode", "flex", "none"):
        return "service.currentRole is missing or unknown"
    if not isinstance(resource, dict):
        return "resource is missing"
    slots = resource.get("availSlotsNum")
    if not isinstance(slots, int) or isinstance(slots, bool) or not 0 <= slots <= 5000:
        return "resource.availSlotsNum must be an integer in [0, 5000]"
    blocks = resource.get("availBlockNum")
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 0:
        return "resource.availBlockNum must be a non-negative integer"
    for key in STATUS_FIELDS:
        if not isinstance(resource.get(key), int):
            return f"resource.{key} is missing"
    peers = data.get("linkStatus", {}).get("peers") if isinstance(data.get("linkStatus"), dict) else None
    if not isinstance(peers, list):
        return "linkStatus.peers is missing"
    return None


def instance(node: Node, nodes: dict[int, Node] | None = None) -> dict[str, Any]:
    """One entry of POST /v1/instances/refresh (CoordinatorRequestHandler L330-470). Its peers are
    SetPeers's: configured peers this node reports linked `ok` whose own status reports the link
    back (IsNodeLinkedByPeer), not every configured peer."""
    known = nodes or {}
    linked = [peer for peer in node.peers if node.link_ok(peer) and peer in known and known[peer].link_ok(node.id)]
    resource = node.status.get("resource", {})
    role = node.role or "none"
    return {
        "id": node.id,
        "ip": node.ip,
        "port": str(node.port),
        "metric_port": str(node.metric_port),
        "inter_comm_port": str(node.inter_comm_port) if node.inter_comm_port else "",
        "model_name": node.config.get("modelName", ""),
        "dynamic_info": {
            "avail_slots_num": resource.get("availSlotsNum", 0),
            "avail_block_num": resource.get("availBlockNum", 0),
            "waiting_request_num": resource.get("waitingRequestNum", 0),
            "running_request_num": resource.get("runningRequestNum", 0),
            "swapped_request_num": resource.get("swappedRequestNum", 0),
            "free_npu_block_nums": resource.get("freeNpuBlockNums", 0),
            "free_cpu_block_nums": resource.get("freeCpuBlockNums", 0),
            "total_npu_block_nums": resource.get("totalNpuBlockNums", 0),
            "total_cpu_block_nums": resource.get("totalCpuBlockNums", 0),
            "peers": linked,
        },
        "static_info": {
            "group_id": node.group,
            "max_seq_len": node.config.get("maxSeqLen", 0),
            # RankTableLoader ParseGroupServerNodes never sets it for one-node instances: every
            # instance keeps DIGSInstanceStaticInfo's default, 1 (MindIE-Motor digs_instance.h).
            "virtual_id": 1,
            "max_output_len": node.config.get("maxOutputLen", 0),
            "total_slots_num": node.total_slots,
            "total_block_num": resource.get("totalNpuBlockNums", 0),
            "block_size": node.config.get("cacheBlockSize", 0),
            "label": LABELS.get(role, 0),
            "role": ROLE_CODES.get(role, 85),
            "p_percentage": 0,
        },
    }
