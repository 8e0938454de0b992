"""What each child is: command line, working folder, environment, CPUs, health endpoints and
what it depends on.

`build_specs` is a pure function of the plan, the settings and the base environment it is given.
Each child's environment is built afresh from that base, so nothing one child gets leaks into the
next. The dependencies declared here are the only source of the start gating and of the drain
order (reverse dependency order); the engine derives both from them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from supervisor_pd.plan.model import Plan, ServerPlan
from supervisor_pd.plan.ranktable import RANKTABLE_FILE
from supervisor_pd.settings import SECRET_VARIABLES, Settings, without_secrets

# Reference §8: exported per Server by boot.sh. The user's own value wins.
SERVER_DEFAULTS = {
    "ATB_LLM_HCCL_ENABLE": "1",
    "HCCL_OP_EXPANSION_MODE": "AIV",
    "HCCL_RDMA_RETRY_CNT": "7",
    "HCCL_RDMA_TIMEOUT": "18",
    "HCCL_EXEC_TIMEOUT": "60",
    "GRPC_POLL_STRATEGY": "poll",
}
# Never handed to a child: supervisor_pd's secrets, and variables a child would misread.
WITHHELD = SECRET_VARIABLES
# A Kubernetes Service named mindie-ms-coordinator injects MINDIE_MS_COORDINATOR_PORT and breaks
# the Controller (§3.1). With MINDX_TASK_ID and MINDX_SERVER_IP both set (pods run by MindCluster)
# the Controller starts its ClusterD client and writes ClusterD's ranktable over ours (MindIE-Motor
# controller/Controller.cpp Controller::Init, node_scheduler/NodeScheduler.cpp IsUseClusterD).
CONTROLLER_WITHHELD = ("MINDIE_MS_COORDINATOR_PORT", "MINDX_TASK_ID", "MINDX_SERVER_IP")


class Kind(StrEnum):
    SERVER = "server"
    COORDINATOR = "coordinator"
    CONTROLLER = "controller"


@dataclass(frozen=True)
class HttpCheck:
    host: str
    port: int
    path: str
    tls: bool = False  # the listener speaks TLS (mutual: runtime/tlsclient.py)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{self.path}"


class Condition(StrEnum):
    UP = "up"  # the dependency answers its management endpoints (state running or unhealthy)


@dataclass(frozen=True)
class Dependency:
    """Start only when `name` meets `condition`; `first_start_only`: restarts do not wait for it."""

    name: str
    condition: Condition = Condition.UP
    first_start_only: bool = False


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    kind: Kind
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str] = field(compare=False, repr=False)
    cpus: tuple[int, ...] | None
    up: tuple[HttpCheck, ...]  # all answer 200: the process is running
    live: HttpCheck
    ready: HttpCheck | None
    start_deadline: float
    depends_on: tuple[Dependency, ...] = ()
    # Processes of one start group start at most SUPERVISOR_PD_START_CONCURRENCY at a time.
    start_group: str | None = None
    # The service is ready only when this process's readiness is observed and current.
    serving: bool = False
    # Its readiness reflects these processes' (the Coordinator's reflects the Servers'): it counts
    # only when observed after theirs, and any exit of theirs clears it.
    observes: tuple[str, ...] = ()
    # Where it reports work in flight (waited on before stopping) and asks to be stopped.
    work: HttpCheck | None = None
    stop_request: HttpCheck | None = None
    # Ports the process binds on 0.0.0.0 without SO_REUSEADDR as it starts, dying if one fails:
    # started only once they are free (a connection of its previous run lingers in TIME_WAIT).
    exclusive_ports: tuple[int, ...] = ()
    server: ServerPlan | None = None


def dependency_levels(specs: list[ProcessSpec] | tuple[ProcessSpec, ...]) -> list[list[str]]:
    """Names grouped by depth in the dependency graph: first the processes that depend on nothing.

    Start gating reads the dependencies directly; the drain stops these groups in reverse."""
    by_name = {spec.name: spec for spec in specs}
    depth: dict[str, int] = {}

    def level(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise ValueError(f"dependency cycle: {' -> '.join((*seen, name))}")
        if name not in depth:
            deps = [dep.name for dep in by_name[name].depends_on]
            depth[name] = 1 + max((level(dep, (*seen, name)) for dep in deps), default=-1)
        return depth[name]

    for spec in specs:
        level(spec.name)
    groups: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for spec in specs:
        groups[depth[spec.name]].append(spec.name)
    return groups


def child_environment(
    base: Mapping[str, str],
    settings: Settings,
    defaults: Mapping[str, str] | None = None,
    forced: Mapping[str, str] | None = None,
    withheld: tuple[str, ...] = (),
) -> dict[str, str]:
    """base, minus what is withheld, plus defaults the user did not set, plus forced values."""
    env = {key: value for key, value in without_secrets(base).items() if key not in withheld}
    for key, value in (defaults or {}).items():
        env.setdefault(key, value)
    env["MINDIE_LOG_TO_STDOUT"] = settings.log_to_stdout
    env["MINDIE_LOG_TO_FILE"] = settings.log_to_file
    env["MINDIE_LOG_LEVEL"] = settings.log_level
    env.update(forced or {})
    return env


def _kmc(plan: Plan) -> dict[str, str]:
    """Old (KMC) MindIE images find their KMC library through HSECEASY_PATH (docs/tls.md)."""
    return {"HSECEASY_PATH": plan.tls.hseceasy_path} if plan.tls.hseceasy_path else {}


def build_specs(plan: Plan, settings: Settings, base: Mapping[str, str], conf: Path, work: Path) -> list[ProcessSpec]:
    """Every child, in start order: Servers, Coordinator, Controller."""
    specs = []
    tls = plan.tls
    for server in plan.servers:
        on = tls.on("server_management")
        management = HttpCheck(server.ip, server.ports.management, "/v1/status", on)
        specs.append(
            ProcessSpec(
                name=server.name,
                kind=Kind.SERVER,
                argv=(*shlex.split(settings.server_command), "--config-file", str(conf / server.config_file)),
                cwd=work / "servers" / server.name,
                env=child_environment(
                    base,
                    settings,
                    defaults={**SERVER_DEFAULTS, **_kmc(plan)},
                    forced={
                        # Unique ATB shared-memory names per Server on one host.
                        "ATB_SHARE_MEMORY_NAME_SUFFIX": str(server.index),
                        # boot.sh forgot it: without it a Server's /metrics answers 500.
                        "MIES_SERVICE_MONITOR_MODE": "1",
                        # The daemon takes these over ipAddress; keep them equal to the plan's.
                        "MIES_CONTAINER_IP": server.ip,
                        "MIES_CONTAINER_MANAGEMENT_IP": server.ip,
                    },
                ),
                cpus=server.cpus,
                up=(HttpCheck(server.ip, server.ports.management, "/v1/config", on), management),
                # Not /v2/health/ready: it fails while roles are switching (reference §6.1).
                live=management,
                ready=HttpCheck(server.ip, server.ports.management, "/v2/health/ready", on),
                start_deadline=settings.server_start_seconds,
                start_group="servers",
                serving=True,
                work=management,
                # What the reference preStop hook does (reference §6.4).
                stop_request=HttpCheck(server.ip, server.ports.management, "/stopService", on),
                # MindIE-LLM http_server.cpp IsPortUsed, before it listens (HttpServer::HttpServerInit).
                exclusive_ports=(server.ports.management, server.ports.port, server.ports.metrics),
                server=server,
            )
        )
    coordinator = plan.coordinator
    status_tls = tls.on("coordinator_status")
    specs.append(
        ProcessSpec(
            name="coordinator",
            kind=Kind.COORDINATOR,
            argv=(*shlex.split(settings.coordinator_command), coordinator.predict_ip, coordinator.manage_ip),
            cwd=work / "coordinator",
            env=child_environment(
                base,
                settings,
                defaults=_kmc(plan),
                forced={"MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH": str(conf / "ms_coordinator.json")},
            ),
            cpus=plan.control_cpus,
            up=(HttpCheck(coordinator.manage_ip, coordinator.status_port, "/v1/startup", status_tls),),
            live=HttpCheck(coordinator.manage_ip, coordinator.status_port, "/v1/health", status_tls),
            ready=HttpCheck(coordinator.manage_ip, coordinator.status_port, "/v1/readiness", status_tls),
            start_deadline=settings.coordinator_start_seconds,
            # Its first start waits for every Server; a restart does not wait for Servers that are
            # restarting themselves (the Controller refills it as they come back).
            depends_on=tuple(Dependency(server.name, first_start_only=True) for server in plan.servers),
            serving=True,
            observes=tuple(server.name for server in plan.servers),
        )
    )
    controller = plan.controller
    specs.append(
        ProcessSpec(
            name="controller",
            kind=Kind.CONTROLLER,
            argv=tuple(shlex.split(settings.controller_command)),
            # Stable across restarts: the recovery file lives under ./logs (reference §10).
            cwd=work / "controller",
            env=child_environment(
                base,
                settings,
                defaults=_kmc(plan),
                forced={
                    "MINDIE_MS_CONTROLLER_CONFIG_FILE_PATH": str(conf / "ms_controller.json"),
                    "GLOBAL_RANK_TABLE_FILE_PATH": str(conf / RANKTABLE_FILE),
                    "MINDIE_MS_P_RATE": str(plan.p_rate),
                    "MINDIE_MS_D_RATE": str(plan.d_rate),
                },
                withheld=CONTROLLER_WITHHELD,
            ),
            cpus=plan.control_cpus,
            up=(HttpCheck(controller.ip, controller.port, "/v1/startup", tls.on("controller_http")),),
            live=HttpCheck(controller.ip, controller.port, "/v1/health", tls.on("controller_http")),
            ready=None,
            start_deadline=settings.controller_start_seconds,
            # It polls every Server and the Coordinator from its first second (reference §3.4).
            depends_on=(*(Dependency(server.name) for server in plan.servers), Dependency("coordinator")),
        )
    )
    return specs
