"""The MindIE files supervisor_pd writes, built from the user's files and the plan.

Each file starts as a copy of the user's JSON, so fields supervisor_pd does not manage keep
their values and order; then exact key paths (never a search by key name) are set, and each
value that single-container PD needs is recorded with the reason.
"""

from __future__ import annotations

import copy
from typing import Any

from supervisor_pd.confdir import ConfInputs, Document
from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import dump_json, validate_document
from supervisor_pd.formats.controller_config import ControllerConfigFile
from supervisor_pd.formats.coordinator_config import CoordinatorConfigFile
from supervisor_pd.formats.http_client_ctl import HttpClientCtlFile
from supervisor_pd.formats.server_config import ServerConfigFile
from supervisor_pd.plan import tls as tls_plan
from supervisor_pd.plan.model import ControllerPlan, CoordinatorPlan, ServerPlan, SettingWritten, TlsPlan
from supervisor_pd.plan.public_vars import ServerVariables

SINGLE_CONTAINER = "pd_disaggregation_single_container"
SERVER_FILE_PATTERN = "config<n>.json"


class Recorder:
    """Collects every value written into a MindIE file together with why it must be so."""

    def __init__(self) -> None:
        self.written: list[SettingWritten] = []
        self._seen: set[tuple[str, str]] = set()

    def set(self, doc: dict[str, Any], path: str, value: Any, *, file: str, why: str, record: bool = True) -> None:
        keys = path.split(".")
        node = doc
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        previous = node.get(keys[-1], _MISSING)
        node[keys[-1]] = value
        if record and (file, path) not in self._seen:
            self._seen.add((file, path))
            self.written.append(
                SettingWritten(
                    file=file,
                    field=path,
                    value=_text(value),
                    previous=None if previous is _MISSING else _text(previous),
                    why=why,
                )
            )

    def remove(self, doc: dict[str, Any], path: str, *, file: str, why: str) -> None:
        """Take `path` out of `doc` (nothing if absent), recorded like a value written."""
        keys = path.split(".")
        node: Any = doc
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or keys[-1] not in node:
            return
        previous = node.pop(keys[-1])
        self.written.append(SettingWritten(file=file, field=path, value="(removed)", previous=_text(previous), why=why))


_MISSING = object()


def _get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for key in path.split("."):
        node = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
    return node


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_inputs(inputs: ConfInputs) -> None:
    """Refuse inputs single-container PD cannot run with, naming the switch to change."""
    multi = inputs.controller.model.multi_node_infer_config
    if multi is not None and multi.multi_node_infer_enable:
        raise InputError(
            f"{inputs.controller.name}: multi_node_infer_config.multi_node_infer_enable",
            "is true; one container runs single-node Servers only: set it to false",
        )
    docs = [inputs.template] if inputs.template is not None else list(inputs.servers.values())
    for doc in docs:
        assert doc is not None
        backend = doc.model.BackendConfig
        if backend.multiNodesInferEnabled:
            raise InputError(
                f"{doc.name}: BackendConfig.multiNodesInferEnabled",
                "is true; one container runs single-node Servers only: set it to false",
            )
    # maxSeqLen, maxIterTimes and the batch sizes are checked with MindIE's public variables applied
    # (plan/public_vars.py): a variable may repair, or break, what the file says.


def server_config(
    doc: Document[ServerConfigFile],
    server: ServerPlan,
    tls: TlsPlan,
    recorder: Recorder,
    variables: ServerVariables | None = None,
) -> tuple[str, bytes]:
    """config<n>.json for one Server; `variables`: MindIE's public variables, checked, applied
    first as MindIE's boot helper applies them to config.json before the Server starts."""
    data = copy.deepcopy(doc.raw)
    if variables is not None:
        variables.apply(data)
    first = server.index == 1

    def put(path: str, value: Any, why: str) -> None:
        recorder.set(data, path, value, file=SERVER_FILE_PATTERN, why=why, record=first)

    put("ServerConfig.inferMode", "dmi", "PD disaggregation: the Server waits for its role and loads the model then")
    put("ServerConfig.ipAddress", server.ip, "all components share one host; the ranktable names this address")
    put(
        "ServerConfig.managementIpAddress",
        server.ip,
        "the Controller reaches management on the ranktable's server_ip",
    )
    put("ServerConfig.port", server.ports.port, "business port, from the port plan")
    put("ServerConfig.managementPort", server.ports.management, "management port, from the port plan")
    put("ServerConfig.metricsPort", server.ports.metrics, "metrics port, from the port plan")
    put("ServerConfig.interCommPort", server.ports.inter_comm, "P<->D hand-off port, from the port plan")
    put(
        "BackendConfig.npuDeviceIds",
        [[device.logical_id for device in server.devices]],
        "this Server's logical NPU ids; in dmi mode the Controller's role request carries the same devices",
    )
    put("BackendConfig.modelInstanceNumber", 1, "one model instance per Server; must match npuDeviceIds")
    for field, value, why in tls_plan.server_fields(tls):
        if _get(data, field) != value:
            put(field, value, why)
    validate_document(ServerConfigFile, data, server.config_file)
    return server.config_file, dump_json(data)


def controller_config(
    doc: Document[ControllerConfigFile],
    controller: ControllerPlan,
    coordinator: CoordinatorPlan,
    rates: tuple[int, int],
    ranktable_path: str,
    tls: TlsPlan,
    recorder: Recorder,
) -> bytes:
    data = copy.deepcopy(doc.raw)
    name = doc.name

    def put(path: str, value: Any, why: str) -> None:
        recorder.set(data, path, value, file=name, why=why)

    put("deploy_mode", SINGLE_CONTAINER, "only this mode sets the Controller's single-container flag")
    put("default_p_rate", rates[0], "the resolved P:D ratio (MINDIE_MS_P_RATE/D_RATE override the file)")
    put("default_d_rate", rates[1], "the resolved P:D ratio (MINDIE_MS_P_RATE/D_RATE override the file)")
    put("http_server.ip", controller.ip, "the Controller's probe listener (POD_IP overrides it at run time too)")
    put("http_server.port", controller.port, "the Controller's probe listener, from the port plan")
    put("mindie_ms_coordinator_port", coordinator.manage_port, "must equal the Coordinator's manage_port")
    put(
        "mindie_ms_coordinator_external_port",
        coordinator.external_port,
        "must equal the Coordinator's external_port (metrics)",
    )
    put("controller_alarm_port", coordinator.alarm_port, "must equal the Coordinator's alarm_port")
    put(
        "node_manager_port",
        controller.node_manager_port,
        "the Controller polls it on each Server IP; kept apart from every listener",
    )
    put("global_rank_table_file_path", ranktable_path, "the ranktable written with this plan")
    recorder.remove(
        data,
        "cluster_port",
        file=name,
        why="no ClusterD (MindCluster) in one container: without it the Controller never starts its ClusterD "
        "client, which would write ClusterD's ranktable over the one above (MindIE-Motor ControllerConfig.cpp, "
        "ContainsClusterDConfig; MINDX_TASK_ID/MINDX_SERVER_IP are withheld from it too)",
    )
    if rates[0] > 0:
        put(
            "digs_periodic_role_decision.auto_pd_role_switching_enable",
            False,
            "a fixed P:D ratio must not be re-decided every day by DIGS",
        )
    put(
        "multi_node_infer_config.multi_node_infer_enable",
        False,
        "single container: no multi-node Servers, no alarm listener",
    )
    controller_tls = tls_plan.motor_fields(tls, tls_plan.controller_pairs(tls), tls_plan.CONTROLLER_KSF)
    for field, value, why in controller_tls + tls_plan.unused_off(tls, tls_plan.CONTROLLER_UNUSED):
        if _get(data, field) != value:
            put(field, value, why)
    validate_document(ControllerConfigFile, data, name)
    return dump_json(data)


def coordinator_config(
    doc: Document[CoordinatorConfigFile], coordinator: CoordinatorPlan, tls: TlsPlan, recorder: Recorder
) -> bytes:
    data = copy.deepcopy(doc.raw)
    name = doc.name

    def put(path: str, value: Any, why: str) -> None:
        recorder.set(data, path, value, file=name, why=why)

    put("digs_scheduler_config.deploy_mode", SINGLE_CONTAINER, "the Coordinator's single-container PD mode")
    put(
        "digs_scheduler_config.scheduler_type",
        "digs_scheduler",
        "PD routing needs the DIGS scheduler",
    )
    put("digs_scheduler_config.algorithm_type", "load_balance", "PD routing needs load_balance")
    put("http_config.predict_ip", coordinator.predict_ip, "inference listener (POD_IP when set)")
    put("http_config.manage_ip", coordinator.manage_ip, "manage, status and metrics listeners")
    put("http_config.predict_port", str(coordinator.predict_port), "inference port (a string in this file)")
    put("http_config.manage_port", str(coordinator.manage_port), "the Controller's refreshes arrive here")
    put("http_config.status_port", str(coordinator.status_port), "probes: /v1/startup, /v1/readiness")
    put("http_config.external_port", str(coordinator.external_port), "aggregated /metrics")
    put("http_config.alarm_port", str(coordinator.alarm_port), "the Controller's alarm port")
    coordinator_tls = tls_plan.motor_fields(tls, tls_plan.coordinator_pairs(tls), tls_plan.COORDINATOR_KSF)
    for field, value, why in coordinator_tls + tls_plan.unused_off(tls, tls_plan.COORDINATOR_UNUSED):
        if _get(data, field) != value:
            put(field, value, why)
    validate_document(CoordinatorConfigFile, data, name)
    return dump_json(data)


HTTP_CLIENT_CTL = "http_client_ctl.json"


def http_client_ctl(tls: TlsPlan) -> bytes:
    """MindIE's own probe (probe.sh -> http_client_ctl) as a client of the pod: the pod's certificate
    chains to the CA of the Controller, the Coordinator's status port and every Server's management
    port, which is what it calls (MindIE-Motor http_client_ctl/scripts/probe.sh)."""
    folder = tls.folder or "./security/http_client"
    data = {
        "tls_enable": tls.on("server_management") or tls.on("coordinator_status") or tls.on("controller_http"),
        "cert": {
            "ca_cert": f"{folder}/{tls_plan.CA}",
            "tls_cert": f"{folder}/{tls_plan.CERT}",
            "tls_key": f"{folder}/{tls_plan.KEY}",
            "tls_passwd": f"{folder}/{tls_plan.PASSWORD}",
            "tls_crl": f"{folder}/{tls_plan.CRL}" if tls.crl else "",
            **(
                {
                    "kmc_ksf_master": f"{folder}/{tls_plan.KSF_MASTER}",
                    "kmc_ksf_standby": f"{folder}/{tls_plan.KSF_STANDBY}",
                }
                if tls.generation == "kmc"
                else {}
            ),
        },
        "log_info": {"log_level": "INFO", "to_file": False},
    }
    validate_document(HttpClientCtlFile, data, HTTP_CLIENT_CTL)
    return dump_json(data)
