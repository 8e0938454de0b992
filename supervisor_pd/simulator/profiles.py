"""Simulated hosts: what an Atlas 800I A2/A3 looks like from inside the container.

A profile is plain data. `host.build_sim_host` turns it into a fixture tree (sysfs, /dev,
/etc/hccn.conf, cgroups) and a bin folder whose npu-smi, hccn_tool and lspci print what the
real tools print for that host.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

# config.json of the simulated weights: what MindIE reads of it is model_type and torch_dtype
# (MindIE-LLM model_deploy_config.cpp:64-68).
LLAMA3_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "torch_dtype": "bfloat16",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "vocab_size": 128256,
}


@dataclass(frozen=True)
class SimChip:
    npu_id: int
    chip_id: int
    logic_id: int
    phy_id: int
    bdf: str
    numa_node: int
    device_ip: str | None
    sdid: int | None = None


@dataclass(frozen=True)
class HostProfile:
    name: str
    summary: str
    pci_device: str
    chip_name: str
    board_chip_name: str
    product_name: str
    npu_smi_version: str
    count_key: str
    phy_id_column: bool
    chips: tuple[SimChip, ...]
    numa_cpus: dict[int, str]
    container_cpus: str
    cgroup: str
    hccn_tool: bool = True
    hccn_conf: dict[int, str] = field(default_factory=dict)
    super_pod_id: int | None = None
    server_index: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    # What the preflight checks read: the /dev/shm mount's size= option, the driver's version
    # file, whether the image has jemalloc, and the model weights the Servers load.
    shm_size: str = "16777216k"
    driver_version: str = "24.1.rc3"
    jemalloc: bool = True
    weights: dict[str, Any] = field(default_factory=lambda: dict(LLAMA3_8B))

    @property
    def npu_ids(self) -> list[int]:
        return sorted({chip.npu_id for chip in self.chips})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostProfile:
        values = dict(data)
        values["chips"] = tuple(SimChip(**chip) for chip in data["chips"])
        values["numa_cpus"] = {int(node): cpus for node, cpus in data["numa_cpus"].items()}
        values["hccn_conf"] = {int(phy): ip for phy, ip in data.get("hccn_conf", {}).items()}
        return cls(**values)


def _a2_chips(npu_ids: range, logic_base: int) -> tuple[SimChip, ...]:
    # Two NUMA nodes: NPUs 0-3 hang off node 0, NPUs 4-7 off node 1.
    return tuple(
        SimChip(
            npu_id=npu,
            chip_id=0,
            logic_id=npu - logic_base,
            phy_id=npu,
            bdf=f"0000:{0xC1 + npu:02x}:00.0",
            numa_node=0 if npu < 4 else 1,
            device_ip=f"29.1.1.{npu + 1}",
        )
        for npu in npu_ids
    )


def _a3_chips() -> tuple[SimChip, ...]:
    chips = []
    for npu in range(8):
        for die in range(2):
            phy = npu * 2 + die
            chips.append(
                SimChip(
                    npu_id=npu,
                    chip_id=die,
                    logic_id=phy,
                    phy_id=phy,
                    bdf=f"0000:{0x41 + npu * 0x10:02x}:00.{die}",
                    numa_node=npu // 2,
                    device_ip=f"10.20.{die}.{npu + 1}",
                    sdid=16777216 + 3 * 256 + phy,
                )
            )
    return tuple(chips)


A2 = HostProfile(
    name="800i-a2",
    summary="Atlas 800I A2: 8 x Ascend 910B3 (one chip each) on 2 NUMA nodes, 192 CPUs, cgroup v1",
    pci_device="d802",
    chip_name="Ascend 910B3",
    board_chip_name="910B3",
    product_name="IT21DMDA",
    npu_smi_version="23.0.6",
    count_key="Card Count",
    phy_id_column=False,
    chips=_a2_chips(range(8), logic_base=0),
    numa_cpus={0: "0-95", 1: "96-191"},
    container_cpus="0-191",
    cgroup="v1",
)

A3 = HostProfile(
    name="800i-a3",
    summary="Atlas 800I A3: 8 x Ascend 910C with 2 dies each (16 chips) on 4 NUMA nodes, 160 CPUs, cgroup v2",
    pci_device="d803",
    chip_name="Ascend910",
    board_chip_name="Ascend910",
    product_name="IT21PDDA",
    npu_smi_version="25.2.0",
    count_key="Total Count",
    phy_id_column=True,
    chips=_a3_chips(),
    numa_cpus={0: "0-39", 1: "40-79", 2: "80-119", 3: "120-159"},
    container_cpus="0-159",
    cgroup="v2",
    super_pod_id=0,
    server_index=3,
)

# The same A2 host seen from a container given NPUs 4-7: npu-smi lists only those, its logic
# ids restart at 0, hccn_tool is not installed in the image and /etc/hccn.conf is mounted.
A2_4NPU = replace(
    A2,
    name="800i-a2-4npu",
    summary="Container on an Atlas 800I A2 limited to NPUs 4-7 by ASCEND_VISIBLE_DEVICES, 48 CPUs",
    chips=_a2_chips(range(4, 8), logic_base=4),
    container_cpus="96-143",
    hccn_tool=False,
    hccn_conf={npu: f"29.1.1.{npu + 1}" for npu in range(8)},
    env={"ASCEND_VISIBLE_DEVICES": "4-7"},
)

PROFILES: dict[str, HostProfile] = {profile.name: profile for profile in (A2, A3, A2_4NPU)}
