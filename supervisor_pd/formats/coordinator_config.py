"""MindIE Coordinator `ms_coordinator.json` (reference §4.1). Its ports are strings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool, StrictStr

from supervisor_pd.formats.common import OpenModel


def _port_text(value: Any) -> Any:
    # MindIE wants "1025"; a number is accepted on input and written back as a string.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError('must be a port number written as a string, like "1025"')
    return value


PortText = Annotated[StrictStr, BeforeValidator(_port_text)]


class HttpConfig(OpenModel):
    allow_all_zero_ip_listening: StrictBool = False
    predict_ip: StrictStr
    predict_port: PortText
    manage_ip: StrictStr
    manage_port: PortText
    alarm_port: PortText
    external_port: PortText
    status_port: PortText


class DigsScheduler(OpenModel):
    deploy_mode: StrictStr
    scheduler_type: StrictStr = "digs_scheduler"
    algorithm_type: StrictStr = "load_balance"


class CoordinatorConfigFile(OpenModel):
    http_config: HttpConfig
    digs_scheduler_config: DigsScheduler
    tls_config: dict[str, Any] = Field(default_factory=dict)
