"""Reading a Server's config<n>.json the way the daemon does (reference §1.1-1.3).

Plain json and checks, no pydantic: a simulated Server must stay small.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor_pd.simulator.files import safe_path_error, server_read_error
from supervisor_pd.simulator.server import tlsconf


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ServerConfig:
    path: Path
    index: int | None
    ip: str
    management_ip: str
    port: int
    management_port: int
    metrics_port: int
    inter_comm_port: int
    infer_mode: str
    model_name: str
    world_size: int
    max_seq_len: int
    max_output_len: int
    cache_block_size: int
    max_batch_size: int
    npu_mem_size: int
    cpu_mem_size: int
    npu_usage_threshold: int
    # httpsEnabled: the planes whose certificates are checked and used (business; management and
    # metrics too unless one IP and all three ports are equal). Empty when HTTPS is off.
    https: tuple[tlsconf.CertSet, ...] = ()
    # interCommTLSEnabled (absent means true) in dmi mode: the P->D link's files. None: plain.
    intercomm: tlsconf.InterComm | None = None

    @property
    def dmi(self) -> bool:
        return self.infer_mode == "dmi"

    @property
    def target(self) -> str:
        """The name faults use for this Server: server-<n> from config<n>.json."""
        return f"server-{self.index}" if self.index is not None else "server"


def _get(data: dict[str, Any], path: str, kind: type, *, required: bool = True, default: Any = None) -> Any:
    node: Any = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            if required:
                raise ConfigError(f"{path} is required")
            return default
        node = node[key]
    if kind is int and (isinstance(node, bool) or not isinstance(node, int)):
        raise ConfigError(f"{path} must be an integer")
    if kind is bool and not isinstance(node, bool):
        raise ConfigError(f"{path} must be a boolean")
    if kind is str and not isinstance(node, str):
        raise ConfigError(f"{path} must be a string")
    return node


def _port(value: int, name: str) -> int:
    if not 1024 <= value <= 65535:
        raise ConfigError(f"ServerConfig.{name} {value} is out of range [1024, 65535]")
    return value


def _ip(value: str, name: str, allow_zero: bool) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ipaddress.AddressValueError:
        raise ConfigError(f"{name} {value!r} is not a valid IPv4 address") from None
    if address.is_unspecified and not allow_zero:
        raise ConfigError(f"{name} is 0.0.0.0 but allowAllZeroIpListening is false")
    return value


_UINT32_MAX = 4294967295
# MindIE-LLM src/config_manager/model_deploy_config.cpp:423-433 CheckModelNameLength.
_MODEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,254}[A-Za-z0-9])?", re.ASCII)


def _value_problems(data: dict[str, Any], model: dict[str, Any]) -> list[str]:
    """The value checks of the Server's config load on the keys MindIE's public variables set, in
    MindIE's words; all are printed, then the Server stops."""
    problems = []
    numbers = {}
    for path, name in (
        ("BackendConfig.ModelDeployConfig.maxSeqLen", "maxSeqLen"),
        ("BackendConfig.ScheduleConfig.maxIterTimes", "maxIterTimes"),
        ("BackendConfig.ScheduleConfig.maxBatchSize", "maxBatchSize"),
        ("BackendConfig.ScheduleConfig.maxPrefillBatchSize", "maxPrefillBatchSize"),
    ):
        value = _get(data, path, int)  # required fields (schedule_config.cpp:29-33, model_deploy_config.cpp:36)
        if not 0 <= value <= _UINT32_MAX:  # ParamChecker::IsWithinRange, param_checker.cpp:86-92
            problems.append(f"The value of param {name} for uint32_t is invalid.")
        numbers[name] = value
    if problems:
        return problems
    if numbers["maxSeqLen"] == 0:  # model_deploy_config.cpp:444-447
        problems.append("The value of modelParam.maxSeqLen can not be 0.")
    if numbers["maxIterTimes"] == 0:  # config_manager_impl.cpp:321-323
        problems.append("The value of ScheduleParam.maxIterTimes can not be 0.")
    # schedule_config.cpp:274-286: maxBatchSize in [1, 819200]; maxPrefillBatchSize, 0 meaning
    # maxBatchSize (:80-82), in [1, maxBatchSize].
    batch = numbers["maxBatchSize"]
    prefill = numbers["maxPrefillBatchSize"] or batch
    for name, value, high, low in (("maxBatchSize", batch, 819200, 1), ("maxPrefillBatchSize", prefill, batch, 1)):
        if value > high:
            problems.append(f"scheduleParam.{name} [{value}] is out of bound [{high}]")
        elif value < low:
            problems.append(f"scheduleParam.{name} [{value}] is less than [{low}]")
    name = _get(model, "ModelConfig.modelName", str)
    if not _MODEL_NAME.fullmatch(name):
        problems.append(
            "The value of modelName must meet the following rules: The string length is [1, 256] and consists of "
            "a match of the type [a-zA-Z0-9_.-]. The first and last characters must be characters or digits."
        )
    return problems


def _check_weights(folder: str) -> None:
    """The weights folder and its config.json, as MindIE-LLM checks them at start: SafePath on the
    folder (model_deploy_config.cpp:467), LoadJson on config.json (:56, safe_io.cpp:30; a failure
    empties modelWeightPath and PreCheck refuses the start, config_manager_impl.cpp:190), then the
    model router's model_type (atb_llm models/__init__.py:54) and the runner's torch_dtype
    (model_runner.py:302), which the real Server meets while loading the model."""
    problem = safe_path_error(folder, directory=True, limit=0o750)
    config = str(Path(folder) / "config.json")
    if problem is None:
        problem = safe_path_error(config, directory=False, limit=0o640, size_limit=500 << 20, suffix=".json")
    if problem is not None:
        raise ConfigError(f"ModelConfig.modelWeightPath: {problem}")
    try:
        document = json.loads(Path(config).read_bytes())
    except ValueError:
        raise ConfigError(f"{config} is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("model_type"), str):
        raise ConfigError(f"{config}: no model_type (KeyError: 'model_type')")
    if document.get("torch_dtype", "float16") not in ("float16", "bfloat16"):
        raise ConfigError(
            "`torch_dtype` is only supported for type `float16` and `bfloat16`, loaded from config.json -> torch_dtype."
        )


def load(path: Path) -> ServerConfig:
    refused = server_read_error(str(path))  # ParamChecker::ReadJsonFile
    if refused is not None:
        raise ConfigError(refused)
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    allow_zero = _get(data, "ServerConfig.allowAllZeroIpListening", bool)
    for key, kind in (("maxLinkNum", int), ("httpsEnabled", bool), ("tokenTimeout", int), ("e2eTimeout", int)):
        _get(data, f"ServerConfig.{key}", kind)
    server = data["ServerConfig"]
    problems = tlsconf.type_problems(server)
    if problems:
        raise ConfigError("\n".join(problems))
    https_enabled = _get(data, "ServerConfig.httpsEnabled", bool)
    # ServerConfig::interCommTLSEnabled defaults to true (MindIE-LLM config_info.h); its files are
    # read only when it is on (ServerConfigManager::LoadOptionalParameters).
    intercomm_enabled = server.get("interCommTLSEnabled", True)
    if intercomm_enabled:
        problems = tlsconf.intercomm_problems(server)
        if problems:
            raise ConfigError("\n".join(problems))
    ip = os.environ.get("MIES_CONTAINER_IP") or _get(data, "ServerConfig.ipAddress", str)
    management_ip = (
        os.environ.get("MIES_CONTAINER_MANAGEMENT_IP")
        or _get(data, "ServerConfig.managementIpAddress", str, required=False)
        or ip
    )
    port = _port(_get(data, "ServerConfig.port", int), "port")
    management_port = _port(
        _get(data, "ServerConfig.managementPort", int, required=False, default=port), "managementPort"
    )
    metrics_port = _port(_get(data, "ServerConfig.metricsPort", int), "metricsPort")
    inter_comm = _port(_get(data, "ServerConfig.interCommPort", int, required=False, default=1121), "interCommPort")
    mode = _get(data, "ServerConfig.inferMode", str)
    if mode not in ("standard", "dmi"):
        raise ConfigError(f"ServerConfig.inferMode {mode!r} must be standard or dmi")
    models = _get(data, "BackendConfig.ModelDeployConfig.ModelConfig", list)
    if not models or not isinstance(models[0], dict):
        raise ConfigError("BackendConfig.ModelDeployConfig.ModelConfig must hold one model")
    model = {"ModelConfig": models[0]}
    _check_weights(_get(model, "ModelConfig.modelWeightPath", str))
    world = _get(model, "ModelConfig.worldSize", int)
    problems = _value_problems(data, model)
    if problems:
        raise ConfigError("\n".join(problems))
    devices = _get(data, "BackendConfig.npuDeviceIds", list)
    if any(not isinstance(inner, list) or len(inner) != world for inner in devices):
        raise ConfigError("BackendConfig.npuDeviceIds: every inner list must hold worldSize devices")
    if _get(data, "BackendConfig.modelInstanceNumber", int) != len(devices):
        raise ConfigError("BackendConfig.modelInstanceNumber must equal the number of npuDeviceIds lists")
    match = re.fullmatch(r"config(\d+)\.json", path.name)
    ip = _ip(ip, "ipAddress", allow_zero)
    management_ip = _ip(management_ip, "managementIpAddress", allow_zero)
    https: tuple[tlsconf.CertSet, ...] = ()
    if https_enabled:  # ServerConfigManager::CheckParam -> CheckHttpsConfig, after the IPs and ports
        all_same = management_ip == ip and management_port == port == metrics_port
        https = tlsconf.cert_sets(server, check_management=not all_same)
        problems = tlsconf.https_config_problems(https)
        if problems:
            raise ConfigError("\n".join(problems))
    return ServerConfig(
        path=path,
        index=int(match.group(1)) if match else None,
        ip=ip,
        management_ip=management_ip,
        port=port,
        management_port=management_port,
        metrics_port=metrics_port,
        inter_comm_port=inter_comm,
        infer_mode=mode,
        model_name=_get(model, "ModelConfig.modelName", str),
        world_size=world,
        max_seq_len=_get(data, "BackendConfig.ModelDeployConfig.maxSeqLen", int),
        max_output_len=_get(data, "BackendConfig.ScheduleConfig.maxIterTimes", int),
        cache_block_size=_get(data, "BackendConfig.ScheduleConfig.cacheBlockSize", int),
        max_batch_size=min(5000, _get(data, "BackendConfig.ScheduleConfig.maxBatchSize", int)),
        npu_mem_size=_get(model, "ModelConfig.npuMemSize", int, required=False, default=-1),
        cpu_mem_size=_get(model, "ModelConfig.cpuMemSize", int, required=False, default=0),
        npu_usage_threshold=_get(
            data, "ServerConfig.HealthCheckConfig.npuUsageThreshold", int, required=False, default=0
        ),
        https=https,
        intercomm=tlsconf.intercomm_set(server) if intercomm_enabled and mode == "dmi" else None,
    )
