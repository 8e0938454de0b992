"""Every setting of supervisor_pd, declared once: type, default, environment name, description.

Our own settings read `SUPERVISOR_PD_*` variables. MindIE's variables keep their names and
meaning, so an existing pod spec works unchanged. Precedence: command-line flag > environment
> default. The CLI passes its flags as keyword arguments, which pydantic-settings ranks first.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from enum import StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from supervisor_pd.errors import InputError
from supervisor_pd.settings.running import RunningSettings

PREFIX = "SUPERVISOR_PD_"
# supervisor_pd's secrets: never handed to another process (children, host tools, the guardian).
SECRET_VARIABLES = (PREFIX + "API_TOKEN",)
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """`env` minus SECRET_VARIABLES, in any case: the settings read a variable in any case."""
    return {key: value for key, value in env.items() if key.upper() not in SECRET_VARIABLES}


class SimProfile(StrEnum):
    """Simulated hosts shipped with the simulator."""

    A2 = "800i-a2"
    A3 = "800i-a3"
    A2_4NPU = "800i-a2-4npu"


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "supervisor-pd"


Port = Annotated[int, Field(ge=1024, le=65535)]
MAX_TOKEN_BYTES = 4096


class Settings(RunningSettings):
    """Settings for planning and running the PD stack."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    # --- supervisor_pd's own settings ------------------------------------------------
    simulate: SimProfile | None = Field(
        None,
        description="Run on a simulated host (800i-a2, 800i-a3, 800i-a2-4npu): the simulator's bin "
        "folder goes first on PATH and the sample configs are used unless a conf dir is given.",
    )
    conf_dir: Path | None = Field(
        None,
        description="Folder with the MindIE input configs (config.json or config1..N.json, "
        "ms_controller.json, ms_coordinator.json). Default: CONFIG_FROM_CONFIG_FILE_PATH, else "
        "$MIES_INSTALL_PATH/conf.",
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where supervisor_pd keeps generated configs, simulated hosts and process state.",
    )
    output_dir: Path | None = Field(
        None, description="Where the generated configs and ranktable go. Default: <state_dir>/conf."
    )
    host_root: Path = Field(
        Path("/"),
        description="Root under which /sys, /proc, /dev and /etc are read (tests point it at fixture trees).",
    )
    device_ips: Literal["auto", "strict"] = Field(
        "auto",
        description="auto: fall back to placeholder device IPs (1.1.1.N) with a warning when a device "
        "has none; strict: a missing device IP is an error.",
    )
    device_type: Literal["auto", "800i-a2", "800i-a3"] = Field(
        "auto", description="Atlas 800I model; auto reads lspci (d802/d803), else npu-smi's chip name."
    )
    cpu_binding: Literal["auto", "off", "strict"] = Field(
        "auto",
        description="auto: bind each Server to CPUs of its NPUs' NUMA node, degrading with a warning "
        "where the topology does not allow it; strict: fail instead; off: no CPU binding.",
    )
    control_cpus: int = Field(
        0,
        ge=0,
        description="CPUs reserved for the supervisor, Controller and Coordinator; 0 = one per 32 "
        "container CPUs, at least one.",
    )
    port_base: Port = Field(2000, description="First port tried when a port has to be generated.")
    port_conflicts: Literal["repair", "strict"] = Field(
        "repair",
        description="repair: a configured port that clashes or is taken is moved and the move is "
        "reported; strict: it is an error.",
    )
    api_host: IPv4Address = Field(IPv4Address("0.0.0.0"), description="Address of supervisor_pd's HTTP port.")
    api_port: Port = Field(8080, description="supervisor_pd's HTTP port (probes, status, metrics, API).")
    server_ip: IPv4Address = Field(
        IPv4Address("127.0.0.1"),
        description="ipAddress and managementIpAddress of every Server (one host, so loopback).",
    )
    hccl_json: Path = Field(
        Path("/user/serverid/devindex/config/hccl.json"),
        description="The Ascend Operator's hccl.json (A3); read under host_root when present and completed.",
    )
    tool_timeout: float = Field(10.0, gt=0, description="Seconds allowed for one npu-smi/hccn_tool/lspci call.")
    doctor_warn: str = Field(
        "",
        description="Comma-separated preflight checks whose failure is only a warning, by the ids `supervisor-pd "
        "doctor` prints (e.g. shm,links), or `all`: for a site that knows better than the check.",
    )

    # --- the HTTP port ----------------------------------------------------------------------
    api_socket: Path | None = Field(
        None,
        description="Unix socket (mode 0600) for the CLI's control commands, which need no token there. "
        "Default: <state_dir>/api.sock.",
    )
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token for control requests (restart, drain) and process logs on the TCP port; unset = "
        "both disabled there (the local socket needs none).",
    )
    api_token_file: Path | None = Field(None, description="File holding the bearer token (instead of API_TOKEN).")
    api_hosts: str = Field(
        "",
        description="Comma-separated host names the status routes answer for besides IP addresses, localhost and "
        "the pod's own name (a browser page cannot read status through any other name: DNS rebinding).",
    )
    api_max_connections: int = Field(
        0,
        ge=0,
        description="Client connections the HTTP port holds at most (then idle ones are closed, oldest first, "
        "and inference beyond it gets 503); 0 = as many as the open-file limit allows while keeping descriptors "
        "for probes and control.",
    )
    proxy_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to the Coordinator.")
    proxy_read_timeout: float = Field(
        600.0, gt=0, description="Longest silence allowed from the Coordinator while a reply is streaming."
    )
    proxy_max_body_bytes: int = Field(
        0, ge=0, description="Largest request body accepted; 0 = the Coordinator's request_limit.body_limit."
    )
    check_pd_params: bool = Field(
        True,
        description="Refuse (400) request parameters PD disaggregation does not support: n > 1, best_of > 1, "
        "use_beam_search, logprobs, top_logprobs, stop, include_stop_str_in_output.",
    )
    metrics_timeout: float = Field(1.0, gt=0, description="Seconds allowed to scrape one child's /metrics.")
    metrics_cache_seconds: float = Field(2.0, ge=0, description="How long a scrape of the children is reused.")

    # --- TLS (docs/tls.md) ------------------------------------------------------------------
    tls: Literal["auto", "off", "generate", "mounted"] = Field(
        "auto",
        description="auto: each MindIE link encrypted as the input configs say, with certificates from tls_mount when "
        "it holds a pod certificate, else generated; generate: every link MindIE encrypts encrypted, with "
        "certificates made at start; mounted: the same with the certificates under tls_mount; off: every link plain "
        "(MindIE warns of a high network-security risk).",
    )
    tls_mount: Path = Field(
        Path("/mnt/security"),
        description="Read-only folder of certificates: ca/ca.pem, certs/server.pem, keys/server.key.pem, optional "
        "ca/crl.pem (mounted); or a site CA to sign with, ca/ca.pem + ca/ca.key.pem (generate).",
    )
    tls_lifetime_hours: float = Field(
        168.0,
        gt=0,
        description="Validity of a generated pod certificate; it is renewed, and the processes restarted one at a "
        "time, once two thirds of it have passed.",
    )
    api_tls_cert: Path | None = Field(None, description="Certificate (PEM, chain) for TLS on supervisor_pd's port.")
    api_tls_key: Path | None = Field(None, description="Key for api_tls_cert (unencrypted PEM).")
    api_tls_client_ca: Path | None = Field(
        None,
        description="CA whose client certificates may send control requests on the TLS port without the token "
        "(probes, status and inference need no certificate).",
    )

    # --- MindIE's own variables, same names and meaning ---------------------------------
    mies_install_path: Path | None = Field(
        None, validation_alias="MIES_INSTALL_PATH", description="MindIE Motor install folder."
    )
    gen_server_port: bool = Field(
        True,
        validation_alias="MINDIE_MS_GEN_SERVER_PORT",
        description="true: generate every Server's ports from port_base and one config.json; "
        "false: take config1..N.json as given and repair clashes.",
    )
    p_rate: int | None = Field(
        None,
        ge=0,
        le=767,
        validation_alias="MINDIE_MS_P_RATE",
        description="Prefill share; overrides default_p_rate of ms_controller.json.",
    )
    d_rate: int | None = Field(
        None,
        ge=0,
        le=767,
        validation_alias="MINDIE_MS_D_RATE",
        description="Decode share; overrides default_d_rate of ms_controller.json.",
    )
    pod_ip: IPv4Address | None = Field(
        None,
        validation_alias="POD_IP",
        description="Container IP: the Coordinator's predict IP and the Controller's listener IP.",
    )
    ascend_visible_devices: str | None = Field(
        None,
        validation_alias="ASCEND_VISIBLE_DEVICES",
        description="Physical NPU ids given to the container (e.g. 0-3,6).",
    )
    ascend_rt_visible_devices: str | None = Field(
        None,
        validation_alias="ASCEND_RT_VISIBLE_DEVICES",
        description="Logical NPU ids the CANN runtime may use, renumbered from 0.",
    )
    log_to_file: str = Field("1", validation_alias="MINDIE_LOG_TO_FILE", description="MindIE file logging.")
    log_to_stdout: str = Field("1", validation_alias="MINDIE_LOG_TO_STDOUT", description="MindIE stdout logging.")
    log_level: str = Field("INFO", validation_alias="MINDIE_LOG_LEVEL", description="MindIE log level.")
    check_inputfiles_permission: str | None = Field(
        None,
        validation_alias="MINDIE_CHECK_INPUTFILES_PERMISSION",
        description="MindIE's own check of the files it reads: 0 turns off its mode (0640) and owner checks; "
        "its path checks stay (see docs/running.md).",
    )
    config_from_config_file_path: Path | None = Field(
        None,
        validation_alias="CONFIG_FROM_CONFIG_FILE_PATH",
        description="Config files mounted from a ConfigMap (read through its ..data link).",
    )

    @field_validator("gen_server_port", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() not in {"true", "false", "1", "0"}:
            raise ValueError("must be true or false")
        return value

    @field_validator("server_command", "coordinator_command", "controller_command")
    @classmethod
    def _command_line(cls, value: str) -> str:
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"is not a command line ({exc})") from None
        if not words:
            raise ValueError("must name a command")
        return value

    @field_validator("api_hosts")
    @classmethod
    def _host_names(cls, value: str) -> str:
        for name in (part.strip() for part in value.split(",")):
            if name and not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a host name (letters, digits, '-' and '.', comma-separated)")
        return value

    @property
    def api_host_names(self) -> tuple[str, ...]:
        return tuple(name.strip().lower() for name in self.api_hosts.split(",") if name.strip())

    @property
    def output(self) -> Path:
        return self.output_dir if self.output_dir is not None else self.state_dir / "conf"

    @property
    def socket_path(self) -> Path:
        return self.api_socket if self.api_socket is not None else self.state_dir / "api.sock"

    def token(self) -> str | None:
        """The control token, from API_TOKEN or API_TOKEN_FILE; None when neither is set."""
        if self.api_token is not None:
            return self.api_token.get_secret_value() or None
        if self.api_token_file is not None:
            where = env_name("api_token_file")
            try:
                with self.api_token_file.open("rb") as handle:
                    # Bounded: a token is short, and /dev/zero or a log file would never end.
                    data = handle.read(MAX_TOKEN_BYTES + 1)
            except OSError as exc:
                raise InputError(where, f"cannot be read: {exc.strerror}") from None
            if len(data) > MAX_TOKEN_BYTES:
                raise InputError(where, f"holds more than {MAX_TOKEN_BYTES} bytes; a token file holds one token")
            try:
                text = data.decode().strip()
            except UnicodeDecodeError:
                raise InputError(where, "must hold the token as UTF-8 text") from None
            return text or None
        return None


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    return PREFIX + field.upper()


_FLAGS = {"output_dir": "--output"}


def load_settings(**overrides: Any) -> Settings:
    """Build settings from flags (keyword arguments) and the environment.

    A bad value raises InputError naming the flag or variable and what is allowed.
    """
    flags = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**flags)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        if field in flags:
            where = _FLAGS.get(field, "--" + field.replace("_", "-"))
        elif field in Settings.model_fields:
            where = env_name(field)
        else:
            where = field
        raise InputError(where, _describe(error)) from None


def _describe(error: Any) -> str:
    value = error.get("input")
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    shown = repr(value) if isinstance(value, str) else str(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{message} (got {shown})"
