"""Builders for plain facts and inputs, for unit tests of the pure planning code."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from supervisor_pd.confdir import ConfInputs, Document
from supervisor_pd.formats.controller_config import ControllerConfigFile
from supervisor_pd.formats.coordinator_config import CoordinatorConfigFile
from supervisor_pd.formats.server_config import ServerConfigFile
from supervisor_pd.plan.ports import PortProblem, Trouble
from supervisor_pd.platform.facts import Chip, DeviceType, HostFacts
from tests.helpers import SAMPLE_CONF


def sample(name: str) -> dict[str, Any]:
    return orjson.loads((SAMPLE_CONF / name).read_bytes())


def inputs(
    *,
    template: Callable[[dict[str, Any]], None] | None = None,
    controller: Callable[[dict[str, Any]], None] | None = None,
    coordinator: Callable[[dict[str, Any]], None] | None = None,
    servers: dict[int, dict[str, Any]] | None = None,
) -> ConfInputs:
    """The sample configs, each optionally changed by a function, as validated Documents."""

    def doc(name: str, model: type, change: Callable[[dict[str, Any]], None] | None, raw: dict | None = None):  # type: ignore[no-untyped-def]
        data = copy.deepcopy(raw if raw is not None else sample(name))
        if change is not None:
            change(data)
        return Document(name, data, model.model_validate(data))

    return ConfInputs(
        conf_dir=Path("/conf"),
        source="test",
        template=None if servers is not None else doc("config.json", ServerConfigFile, template),
        servers={n: doc(f"config{n}.json", ServerConfigFile, None, raw) for n, raw in (servers or {}).items()},
        controller=doc("ms_controller.json", ControllerConfigFile, controller),
        coordinator=doc("ms_coordinator.json", CoordinatorConfigFile, coordinator),
    )


def chips(count: int, *, per_node: int | None = None, per_npu: int = 1, ip: str = "29.1.1.{}") -> tuple[Chip, ...]:
    return tuple(
        Chip(
            npu_id=i // per_npu,
            chip_id=i % per_npu,
            phy_id=i,
            logical_id=i,
            chip_name="Ascend 910B3",
            bdf=f"0000:{i:02x}:00.0",
            numa_node=None if per_node is None else i // per_node,
            device_ip=ip.format(i + 1),
            device_ip_source="hccn_tool",
        )
        for i in range(count)
    )


def facts(
    chip_list: tuple[Chip, ...],
    *,
    nodes: dict[int, str] | None = None,
    cpus: str = "0-191",
    device_type: DeviceType = DeviceType.A2,
) -> HostFacts:
    from supervisor_pd.platform.cpuset import parse_cpulist

    return HostFacts(
        device_type=device_type,
        device_type_source="test",
        chips=chip_list,
        numa_nodes={node: parse_cpulist(text) for node, text in (nodes or {0: "0-95", 1: "96-191"}).items()},
        container_cpus=parse_cpulist(cpus),
        cpuset_source="test",
        ephemeral_ports=(32768, 60999),
    )


class FakeChecker:
    """Ports in `busy` are in use; IPs in `foreign` are not this host's."""

    def __init__(self, busy: set[int] | None = None, foreign: set[str] | None = None) -> None:
        self.busy = busy or set()
        self.foreign = foreign or set()
        self.calls: list[tuple[str, int]] = []

    def problem(self, ip: str, port: int) -> PortProblem | None:
        self.calls.append((ip, port))
        if ip in self.foreign:
            return PortProblem(Trouble.BAD_IP, "is not an address of this host")
        if port in self.busy:
            return PortProblem(Trouble.IN_USE, "is in use by pid 42 (nginx)")
        return None


def mindie_status(role: str = "decode", **resource: object) -> dict[str, object]:
    """A body shaped as MindIE-LLM's HandleStatusV1 answers it (http_handler.cpp:247-316)."""
    fields = {
        "availSlotsNum": 190,
        "availBlockNum": 700,
        "waitingRequestNum": 2,
        "runningRequestNum": 10,
        "swappedRequestNum": 0,
        "freeNpuBlockNums": 700,
        "freeCpuBlockNums": 0,
        "totalNpuBlockNums": 1024,
        "totalCpuBlockNums": 0,
    }
    fields.update(resource)
    return {
        "service": {"roleStatus": "RoleReady", "currentRole": role},
        "resource": fields,
        "linkStatus": {"peers": []},
    }
