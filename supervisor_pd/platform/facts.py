"""Plain, immutable facts about the host, produced by discovery and consumed by planning."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DeviceType(StrEnum):
    """The Atlas 800I models supervisor_pd knows."""

    A2 = "800i-a2"
    A3 = "800i-a3"

    @property
    def label(self) -> str:
        return "Atlas 800I A2" if self is DeviceType.A2 else "Atlas 800I A3"


class Level(StrEnum):
    INFO = "info"
    WARNING = "warning"


@dataclass(frozen=True)
class Notice:
    """Something the operator should read: a degraded choice, a repair, an explanation."""

    level: Level
    subject: str
    message: str


@dataclass(frozen=True)
class Chip:
    """One compute chip (an NPU on A2, one of the two dies of an NPU on A3).

    `phy_id` is the physical device id: /dev/davinci<phy_id>, ASCEND_VISIBLE_DEVICES, hccn_tool
    and the ranktable's device_id use it. `logical_id` is the index the CANN runtime sees inside
    this container (after ASCEND_RT_VISIBLE_DEVICES renumbering): npuDeviceIds and
    device_logical_id use it.
    """

    npu_id: int
    chip_id: int
    phy_id: int
    logical_id: int
    chip_name: str
    bdf: str | None = None
    numa_node: int | None = None
    device_ip: str = ""
    device_ip_source: str = ""
    super_device_id: str | None = None


@dataclass(frozen=True)
class HostFacts:
    """Everything planning needs to know about the host, and nothing it has to ask again."""

    device_type: DeviceType
    device_type_source: str
    chips: tuple[Chip, ...]
    numa_nodes: dict[int, frozenset[int]]
    container_cpus: frozenset[int]
    cpuset_source: str
    ephemeral_ports: tuple[int, int]
    super_pod_id: str | None = None
    simulated: str | None = None
    notices: tuple[Notice, ...] = field(default_factory=tuple)
