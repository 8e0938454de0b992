"""MindIE Controller `ms_controller.json` (reference §3.2)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictInt, StrictStr

from supervisor_pd.formats.common import OpenModel


class HttpServer(OpenModel):
    ip: StrictStr
    port: StrictInt


class MultiNodeInfer(OpenModel):
    multi_node_infer_enable: StrictBool = False


class ProcessManager(OpenModel):
    """Where the Controller keeps the roles it assigned, to recover them after a restart (reference §3.2)."""

    to_file: StrictBool = True
    file_path: StrictStr = "./logs/controller_process_status.json"


class PeriodicRoleDecision(OpenModel):
    auto_pd_role_switching_enable: StrictBool = True


Rate = Annotated[StrictInt, Field(ge=0, le=767)]


class ControllerConfigFile(OpenModel):
    deploy_mode: StrictStr
    default_p_rate: Rate = 0
    default_d_rate: Rate = 0
    http_server: HttpServer
    mindie_ms_coordinator_port: StrictInt | None = None
    mindie_ms_coordinator_external_port: StrictInt | None = None
    controller_alarm_port: StrictInt | None = None
    node_manager_port: StrictInt | None = None
    global_rank_table_file_path: StrictStr | None = None
    multi_node_infer_config: MultiNodeInfer | None = None
    process_manager: ProcessManager = Field(default_factory=ProcessManager)
    digs_periodic_role_decision: PeriodicRoleDecision | None = None
    tls_config: dict[str, Any] = Field(default_factory=dict)
