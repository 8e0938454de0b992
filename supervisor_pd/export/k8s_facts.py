"""What the Kubernetes manifests are made from: the plan's facts and the settings, as typed values.

Everything here is read from what `run` would plan in the pod (the NPUs, the Servers and their
roles, the Coordinator's predict port, supervisor_pd's port) or from the settings the pod gets
(drain and ready deadlines); the timings derived from them live here too, so the manifest's
numbers and its comments come from one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from supervisor_pd.platform.facts import DeviceType
from supervisor_pd.runtime.drain import GROUP_GONE_LIMIT

# The node label the Ascend device plugin sets, and the NPU devices (dies on an A3) of that node.
ACCELERATOR_TYPE = {DeviceType.A2: "module-910b-8", DeviceType.A3: "module-a3-16"}
NODE_DEVICES = {DeviceType.A2: 8, DeviceType.A3: 16}
RESOURCE = "huawei.com/Ascend910"
# The names the reference manifests use (MindIE-Motor deployment/mindie_service_single_container.yaml),
# so that its users' scripts and ConfigMaps keep working.
NAME = "mindie-server"
CONFIGMAP = "config-file-path"
CONFIG_MOUNT = "/mnt/config-files"
RINGS_CONFIG = f"rings-config-{NAME}"

# The pod's drain deadline when SUPERVISOR_PD_GRACE_SECONDS is not set: supervisor-pd's own
# default (25 s) fits Kubernetes' default grace period of 30 s, but the manifest sets that period
# itself, and half of 60 s covers a whole reply of the sample configs (maxIterTimes x decode time).
POD_GRACE_SECONDS = 60.0
# preStop: time for the endpoint removal to reach every proxy before SIGTERM starts the drain.
PRESTOP_SECONDS = 5
# After the kill's wait (GROUP_GONE_LIMIT): supervisor-pd closes its port and exits 0.
EXIT_SECONDS = 5
# Discovery and planning before the ready deadline starts counting, for the startup probe.
PLANNING_SECONDS = 60
STARTUP_PERIOD = 10
# An image pull on top of the startup probe's budget, for progressDeadlineSeconds (in whole 10 min).
IMAGE_PULL_SECONDS = 300
# Site-specific placeholders: memory per Server (model loading goes through host memory), CPUs.
MEMORY_PER_SERVER_GI = 64
CPUS = 32
SHM = "16Gi"
UID = GID = 1000


@dataclass(frozen=True)
class ConfigFile:
    name: str
    text: str


@dataclass(frozen=True)
class PodFacts:
    """One pod of the Deployment, as supervisor-pd would plan it on its node."""

    device_type: DeviceType
    npus: int  # physical NPUs
    devices: int  # NPU devices (= chips: two per NPU on an A3) = huawei.com/Ascend910
    servers: int
    prefill: int  # 0 with decode 0: the Controller decides the roles
    decode: int
    world_size: int
    p_rate: int
    d_rate: int
    predict_port: int
    api_port: int
    grace_seconds: float
    ready_seconds: float
    doctor_warn: str
    model_name: str
    weights_path: str  # modelWeightPath of config.json: where the model is mounted
    reply_seconds: tuple[int, int] | None  # (maxIterTimes, decodeTimeMsPerReq) when both are known
    configs: tuple[ConfigFile, ...]
    source: str  # where the configs were read, as the ConfigMap's comment names it
    command: str  # the export command that makes this output
    replicas: int = 1
    scale_out: bool = False

    @property
    def a3(self) -> bool:
        return self.device_type is DeviceType.A3

    @property
    def rings_config(self) -> bool:
        """The Ascend operator's hccl.json ConfigMap: A3, one pod. With several pods the operator
        writes every pod's devices into one hccl.json, which discovery reads as this node's."""
        return self.a3 and not self.scale_out

    @property
    def whole_node(self) -> bool:
        return self.devices >= NODE_DEVICES[self.device_type]

    @property
    def termination_seconds(self) -> int:
        return math.ceil(PRESTOP_SECONDS + self.grace_seconds + GROUP_GONE_LIMIT + EXIT_SECONDS)

    @property
    def startup_failures(self) -> int:
        return math.ceil((self.ready_seconds + PLANNING_SECONDS) / STARTUP_PERIOD)

    @property
    def startup_budget(self) -> int:
        return self.startup_failures * STARTUP_PERIOD

    @property
    def progress_deadline(self) -> int:
        return math.ceil((self.startup_budget + IMAGE_PULL_SECONDS) / 600) * 600

    @property
    def memory(self) -> str:
        return f"{MEMORY_PER_SERVER_GI * self.servers}Gi"

    @property
    def machine(self) -> str:
        """'Atlas 800I A3 (8 NPUs x 2 dies = 16 NPU devices)'."""
        label = self.device_type.label
        if self.devices == self.npus:
            return f"{label} ({self.npus} NPUs)"
        return f"{label} ({self.npus} NPUs x {self.devices // self.npus} dies = {self.devices} NPU devices)"

    @property
    def split(self) -> str:
        """'4 Servers of worldSize 2 (2 prefill, 2 decode)'."""
        roles = (
            f"{self.prefill} prefill, {self.decode} decode"
            if self.prefill + self.decode
            else "roles chosen by the Controller"
        )
        return f"{self.servers} Servers of worldSize {self.world_size} ({roles})"


def seconds_text(value: float) -> str:
    """A setting's value as a variable holds it: 60, not 60.0."""
    return str(int(value)) if value == int(value) else repr(value)
