"""The global ranktable the Controller reads (reference §5.1), built from the plan."""

from __future__ import annotations

from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import dump_json
from supervisor_pd.formats.ranktable import (
    CONTROLLER_GROUP,
    COORDINATOR_GROUP,
    SERVER_GROUP,
    Endpoint,
    GlobalRankTable,
    RankDevice,
    RankServer,
    ServerGroup,
    SuperPod,
    SuperPodMember,
    check_global_ranktable,
)
from supervisor_pd.plan.model import ControllerPlan, CoordinatorPlan, ServerPlan
from supervisor_pd.platform.facts import DeviceType

RANKTABLE_FILE = "global_ranktable.json"


def build_ranktable(
    device_type: DeviceType,
    servers: tuple[ServerPlan, ...],
    controller: ControllerPlan,
    coordinator: CoordinatorPlan,
    super_pod_id: str | None,
) -> bytes:
    """Groups "2" (Servers, in instance order), "1" (Controller), "0" (Coordinator)."""
    a3 = device_type is DeviceType.A3
    entries = [
        RankServer(
            server_id=server.ip,
            server_ip=server.ip,
            predict_port=str(server.ports.port),
            mgmt_port=str(server.ports.management),
            metric_port=str(server.ports.metrics),
            inter_comm_port=str(server.ports.inter_comm),
            device=[
                RankDevice(
                    device_id=str(device.phy_id),
                    device_ip=device.device_ip,
                    super_device_id=device.super_device_id if a3 else None,
                    rank_id=str(device.rank_id),
                    device_logical_id=str(device.logical_id),
                )
                for device in server.devices
            ],
        )
        for server in servers
    ]
    server_group = ServerGroup(group_id=SERVER_GROUP, server_count=len(entries), server_list=entries)
    if a3:
        members = [SuperPodMember(server_id=ip) for ip in dict.fromkeys(server.ip for server in servers)]
        pods = [SuperPod(super_pod_id=super_pod_id or "0", server_list=members)]
        server_group = server_group.model_copy(update={"super_pod_list": pods})
    table = GlobalRankTable(
        server_group_list=[
            server_group,
            ServerGroup(group_id=CONTROLLER_GROUP, server_count=1, server_list=[Endpoint(server_ip=controller.ip)]),
            ServerGroup(
                group_id=COORDINATOR_GROUP, server_count=1, server_list=[Endpoint(server_ip=coordinator.manage_ip)]
            ),
        ]
    )
    data = table.to_json()
    problems = check_global_ranktable(data)
    if problems:
        raise InputError(RANKTABLE_FILE, f"the Controller would refuse it: {problems[0]}")
    return dump_json(data)
