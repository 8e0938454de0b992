"""What each child is: command line, working folder, environment, CPUs and health endpoints.

A pure function of the plan, the settings and the supervisor's own environment. Each child's
environment is built afresh from that base, so nothing one child gets leaks into the next.
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
# A Kubernetes Service named mindie-ms-coordinator injects this and breaks the Controller (§3.1).
CONTROLLER_WITHHELD = ("MINDIE_MS_COORDINATOR_PORT",)


class Kind(StrEnum):
    SERVER = "server"
    COORDINATOR = "coordinator"
    CONTROLLER = "controller"


@dataclass(frozen=True)
class HttpCheck:
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    kind: Kind
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str] = field(compare=False, repr=False)
    cpus: tuple[int, ...] | None
    up: tuple[HttpCheck, ...]
    live: HttpCheck
    ready: HttpCheck | None
    start_deadline: float
    server: ServerPlan | None = None


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


def build_specs(plan: Plan, settings: Settings, base: Mapping[str, str], conf: Path, work: Path) -> list[ProcessSpec]:
    """Every child, in start order: Servers, Coordinator, Controller."""
    specs = []
    for server in plan.servers:
        management = HttpCheck(server.ip, server.ports.management, "/v1/status")
        specs.append(
            ProcessSpec(
                name=server.name,
                kind=Kind.SERVER,
                argv=(*shlex.split(settings.server_command), "--config-file", str(conf / server.config_file)),
                cwd=work / "servers" / server.name,
                env=child_environment(
                    base,
                    settings,
                    defaults=SERVER_DEFAULTS,
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
                up=(HttpCheck(server.ip, server.ports.management, "/v1/config"), management),
                # Not /v2/health/ready: it fails while roles are switching (reference §6.1).
                live=management,
                ready=HttpCheck(server.ip, server.ports.management, "/v2/health/ready"),
                start_deadline=settings.server_start_seconds,
                server=server,
            )
        )
    coordinator = plan.coordinator
    specs.append(
        ProcessSpec(
            name="coordinator",
            kind=Kind.COORDINATOR,
            argv=(*shlex.split(settings.coordinator_command), coordinator.predict_ip, coordinator.manage_ip),
            cwd=work / "coordinator",
            env=child_environment(
                base, settings, forced={"MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH": str(conf / "ms_coordinator.json")}
            ),
            cpus=plan.control_cpus,
            up=(HttpCheck(coordinator.manage_ip, coordinator.status_port, "/v1/startup"),),
            live=HttpCheck(coordinator.manage_ip, coordinator.status_port, "/v1/health"),
            ready=HttpCheck(coordinator.manage_ip, coordinator.status_port, "/v1/readiness"),
            start_deadline=settings.coordinator_start_seconds,
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
                forced={
                    "MINDIE_MS_CONTROLLER_CONFIG_FILE_PATH": str(conf / "ms_controller.json"),
                    "GLOBAL_RANK_TABLE_FILE_PATH": str(conf / RANKTABLE_FILE),
                    "MINDIE_MS_P_RATE": str(plan.p_rate),
                    "MINDIE_MS_D_RATE": str(plan.d_rate),
                },
                withheld=CONTROLLER_WITHHELD,
            ),
            cpus=plan.control_cpus,
            up=(HttpCheck(controller.ip, controller.port, "/v1/startup"),),
            live=HttpCheck(controller.ip, controller.port, "/v1/health"),
            ready=None,
            start_deadline=settings.controller_start_seconds,
        )
    )
    return specs
