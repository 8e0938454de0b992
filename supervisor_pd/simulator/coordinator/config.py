"""The simulated Coordinator's command line and ms_coordinator.json, read and checked as MindIE's
Coordinator reads them at start (Configure::Init); a refusal is a ConfigError."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor_pd.simulator import motortls
from supervisor_pd.simulator.files import motor_config_rules, motor_read_error


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    predict_ip: str
    manage_ip: str
    predict_port: int
    manage_port: int
    status_port: int
    external_port: int
    max_requests: int
    single_node_max_requests: int
    body_limit: int
    max_retry: int
    first_token_timeout: float
    infer_timeout: float
    reuse_time: float
    # tls_config, by pair (motortls.COORDINATOR_PAIRS): request_server = the predict listener,
    # controller_server = manage, status = status, external = /metrics; mindie_client = the
    # client toward the Servers' business ports, mindie_mangment = toward their metrics ports.
    tls: dict[str, motortls.TlsItems] = field(default_factory=dict)


def _port(config: dict[str, Any], key: str) -> int:
    value = config.get("http_config", {}).get(key)
    if not isinstance(value, str) or not value.isdigit() or not 1024 <= int(value) <= 65535:
        raise ConfigError(f'http_config.{key} must be a port written as a string, "1024".."65535"')
    return int(value)


def _ip(value: str, allow_zero: bool) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ipaddress.AddressValueError:
        raise ConfigError(f"{value!r} is not a valid IP address") from None
    if address.is_unspecified and not allow_zero:
        raise ConfigError("0.0.0.0 needs allow_all_zero_ip_listening")
    return value


def load_settings(argv: list[str]) -> Settings:
    if len(argv) > 2:
        raise ConfigError("usage: ms_coordinator [predict_ip [manage_ip]]")
    given = os.environ.get("MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH")
    path = Path(given or "../conf/ms_coordinator.json")
    refused = motor_read_error(str(path), *motor_config_rules(given is not None))  # Configure::Init
    if refused is not None:
        raise ConfigError(f"Failed to read the coordinator configuration file {path}: {refused}")
    try:
        config = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load {path}: {exc}") from None
    http = config.get("http_config", {})
    allow_zero = bool(http.get("allow_all_zero_ip_listening", False))
    mode = config.get("digs_scheduler_config", {}).get("deploy_mode")
    if mode not in ("single_node", "pd_separate", "pd_disaggregation", "pd_disaggregation_single_container"):
        raise ConfigError(f"digs_scheduler_config.deploy_mode {mode!r} is not valid")
    # Configure::ReadTlsConfig (IsJsonTlsInvalid): all eight switches, and the items of each one on.
    pairs, problems = motortls.read_pairs(
        config.get("tls_config"), motortls.COORDINATOR_PAIRS, motortls.COORDINATOR_KMC
    )
    if problems:
        raise ConfigError("ReadTlsConfig failed, some params invalid!\n" + "\n".join(problems))
    limits = config.get("request_limit", {})
    exceptions = config.get("exception_config", {})
    max_requests = int(os.environ.get("MINDIE_MS_COORDINATOR_CONFIG_MAX_REQ") or limits.get("max_requests", 10000))
    single = int(
        os.environ.get("MINDIE_MS_COORDINATOR_CONFIG_SINGLE_NODE_MAX_REQ")
        or limits.get("single_node_max_requests", 1000)
    )
    return Settings(
        predict_ip=_ip(argv[0] if argv else http.get("predict_ip", "127.0.0.1"), allow_zero),
        manage_ip=_ip(argv[1] if len(argv) > 1 else http.get("manage_ip", "127.0.0.1"), allow_zero),
        predict_port=_port(config, "predict_port"),
        manage_port=_port(config, "manage_port"),
        status_port=_port(config, "status_port"),
        external_port=_port(config, "external_port"),
        max_requests=max_requests,
        single_node_max_requests=single,
        body_limit=int(limits.get("body_limit", 1)) * 1024 * 1024,
        max_retry=int(exceptions.get("max_retry", 5)),
        first_token_timeout=float(exceptions.get("first_token_timeout", 600)),
        infer_timeout=float(exceptions.get("infer_timeout", 600)),
        reuse_time=float(config.get("prometheus_metrics_config", {}).get("reuse_time", 3)),
        tls=pairs,
    )
