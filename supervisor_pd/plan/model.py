"""The deployment plan: an immutable value that says what will run where, on which ports and CPUs,
and which files will be written. It can be printed, diffed and tested without any process."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from supervisor_pd.platform.facts import DeviceType, Level


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Role(StrEnum):
    PREFILL = "prefill"
    DECODE = "decode"
    AUTO = "auto"


class PortOrigin(StrEnum):
    """Where a port came from. `moved` ports were configured but could not be kept."""

    CONFIGURED = "configured"
    GENERATED = "generated"
    MOVED = "moved"


class NoticeOut(Frozen):
    level: Level
    subject: str
    message: str


class PortAssignment(Frozen):
    """One port of one component, where it is written and why it has its value."""

    owner: str
    field: str
    port: int
    ip: str
    listens: bool
    origin: PortOrigin
    requested: int | None = None
    reason: str = ""
    also_written_to: tuple[str, ...] = ()


class DevicePlan(Frozen):
    phy_id: int
    logical_id: int
    rank_id: int
    npu_id: int
    chip_id: int
    device_ip: str
    device_ip_source: str
    numa_node: int | None
    super_device_id: str | None = None


class ServerPorts(Frozen):
    port: int
    management: int
    metrics: int
    inter_comm: int


class ServerPlan(Frozen):
    """One MindIE Server: `index` names config<index>.json; `instance_id` is the Controller's id."""

    index: int
    instance_id: int
    name: str
    role: Role
    ip: str
    devices: tuple[DevicePlan, ...]
    numa_node: int | None
    cpus: tuple[int, ...] | None
    ports: ServerPorts
    config_file: str


class CoordinatorPlan(Frozen):
    body_limit: int
    predict_ip: str
    manage_ip: str
    predict_port: int
    manage_port: int
    status_port: int
    external_port: int
    alarm_port: int


class ControllerPlan(Frozen):
    ip: str
    port: int
    node_manager_port: int
    # The Controller's recovery file, relative to its working folder; None when it keeps none.
    recovery_file: str | None = None


class SupervisorPlan(Frozen):
    api_host: str
    api_port: int


class TlsLink(Frozen):
    """One link of the pod: whether it is encrypted and the switches that say so."""

    key: str
    link: str
    encrypted: bool
    switches: tuple[str, ...]


class TlsPlan(Frozen):
    """TLS for the pod (plan/tls.py): the certificate source, where the files go, and each link."""

    mode: str  # off, generate or mounted
    mode_source: str
    links: tuple[TlsLink, ...]
    generation: str = "current"
    generation_source: str = ""
    server_home: str | None = None
    home_source: str = ""
    folder: str | None = None  # absolute; inside server_home
    crl: bool = False
    san_ips: tuple[str, ...] = ()
    san_names: tuple[str, ...] = ()
    lifetime_hours: float | None = None
    signer: str = ""
    hseceasy_path: str | None = None  # old (KMC) images: where MindIE finds its KMC library

    def on(self, key: str) -> bool:
        for link in self.links:
            if link.key == key:
                return link.encrypted
        raise KeyError(key)

    @property
    def enabled(self) -> bool:
        return any(link.encrypted for link in self.links)


class SettingWritten(Frozen):
    """A value supervisor_pd sets in a MindIE file, with the reason it must be so."""

    file: str
    field: str
    value: str
    previous: str | None
    why: str


class ServerSetting(Frozen):
    """A Server config value one of MindIE's public variables sets (plan/public_vars.py): the
    effective value and where it came from."""

    field: str  # key path in every config<n>.json
    variable: str  # the variable that overrides it
    value: str
    origin: str  # the variable, the input file, MindIE's default, or single-container PD
    source: Literal["variable", "file", "default", "plan"]


class PlannedFile(Frozen):
    name: str
    content: bytes

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


class Plan(Frozen):
    model_name: str
    max_seq_len: int
    device_type: DeviceType
    device_type_source: str
    simulated: str | None
    world_size: int
    p_rate: int
    d_rate: int
    rate_source: str
    servers: tuple[ServerPlan, ...]
    coordinator: CoordinatorPlan
    controller: ControllerPlan
    supervisor: SupervisorPlan
    control_cpus: tuple[int, ...] | None
    container_cpus: tuple[int, ...]
    ports: tuple[PortAssignment, ...]
    settings_written: tuple[SettingWritten, ...]
    server_settings: tuple[ServerSetting, ...] = ()
    notices: tuple[NoticeOut, ...]
    files: tuple[PlannedFile, ...]
    tls: TlsPlan
    conf_dir: str
    conf_source: str

    @property
    def prefill(self) -> tuple[ServerPlan, ...]:
        return tuple(server for server in self.servers if server.role is Role.PREFILL)

    @property
    def decode(self) -> tuple[ServerPlan, ...]:
        return tuple(server for server in self.servers if server.role is Role.DECODE)

    def file(self, name: str) -> PlannedFile:
        for planned in self.files:
            if planned.name == name:
                return planned
        raise KeyError(name)
