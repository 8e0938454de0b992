"""The settings of running the processes: start, health, restarts, drain, NPU health, logs,
commands. Declared here for the size of one module; `Settings` (settings/__init__.py) inherits
them, and the environment reads them as any other."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class RunningSettings(BaseSettings):
    """Fields only; the configuration (prefix, case, frozen) is Settings'."""

    # --- running the processes ------------------------------------------------------------
    start_concurrency: int = Field(
        0, ge=0, description="Servers starting at once; a slot frees when a Server answers. 0 = all at once."
    )
    grace_seconds: float = Field(
        25.0,
        gt=0,
        description="Drain deadline after SIGTERM; fits Kubernetes' default 30 s grace period. Each process "
        "group stopped in turn gets its share of what is left.",
    )
    cgroups: Literal["auto", "off"] = Field(
        "auto",
        description="auto: where the supervisor can make cgroups (v2) below its own, each child runs in one, so "
        "nothing it starts can escape the kill at a restart or the stop; off: never.",
    )
    sighup: Literal["drain", "ignore"] = Field(
        "drain",
        description="SIGHUP (a closed terminal or ssh session, a supervisord-style reload): drain and stop like "
        "SIGTERM, or ignore it (logged).",
    )
    stop_seconds: float = Field(
        30.0,
        gt=0,
        description="On a restart asked for through the API: seconds between SIGTERM and SIGKILL "
        "(a Server's own stop path takes up to 20 s).",
    )
    health_interval: float = Field(5.0, gt=0, description="Seconds between health checks of each process.")
    progress_seconds: float = Field(
        30.0,
        ge=0,
        description="While a process loads (a Server's model, its role), one log line about it every this many "
        "seconds: how long, and what it has not done yet. 0: none.",
    )
    health_timeout: float = Field(2.0, gt=0, description="Seconds one health check may take.")
    liveness_failures: int = Field(
        3, ge=1, description="Failed liveness checks in a row before a process is killed and restarted."
    )
    server_start_seconds: float = Field(
        300.0, gt=0, description="Deadline for a Server to answer /v1/config and /v1/status after it starts."
    )
    coordinator_start_seconds: float = Field(
        120.0, gt=0, description="Deadline for the Coordinator to answer /v1/startup after it starts."
    )
    controller_start_seconds: float = Field(
        120.0, gt=0, description="Deadline for the Controller to answer /v1/startup after it starts."
    )
    ready_seconds: float = Field(
        1800.0,
        gt=0,
        description="Deadline for the whole service to become ready (roles assigned, models loaded); "
        "missing it stops everything with exit code 4.",
    )
    controller_stall_seconds: float = Field(
        120.0,
        gt=0,
        description="How long the Coordinator may stay not ready while every Server is role-ready before the "
        "Controller is judged stuck and restarted.",
    )
    coordinator_quarantine_seconds: float = Field(
        10.0,
        gt=0,
        description="How long the Coordinator may stay not ready while every Server is role-ready, after a decode "
        "Server it was linked to restarted, before it is restarted: MindIE's Coordinator refuses every instance "
        "for 2 minutes once it loses a decode Server's link, and only a restart clears that.",
    )
    port_wait_seconds: float = Field(
        150.0,
        ge=0,
        description="How long a Server's start waits for its ports to be bindable the way MindIE's Server binds them "
        "(no SO_REUSEADDR: a connection of its last run keeps them for up to about a minute); not counted against "
        "its restarts. 0: no wait.",
    )
    restart_backoff: float = Field(1.0, ge=0, description="First restart delay; doubles with each failure in a row.")
    restart_backoff_max: float = Field(60.0, ge=0, description="Longest restart delay.")
    restart_stable_seconds: float = Field(
        600.0, gt=0, description="A process that stays up this long starts a new count of failures."
    )
    restart_budget: int = Field(
        5, ge=0, description="Failures in a row allowed per process; one more stops everything with exit code 3."
    )
    npu_health_interval: float = Field(
        15.0,
        ge=0,
        description="Seconds between NPU and link health collections while running (one npu-smi info for every "
        "chip, hccn_tool for chips with a real device IP; docs/npu-health.md); 0 = off.",
    )
    npu_health_timeout: float = Field(
        10.0, gt=0, description="Seconds allowed for one npu-smi/hccn_tool run of an NPU health collection."
    )
    npu_fault: Literal["report", "restart"] = Field(
        "report",
        description="A Server with a bad chip or link is not ready either way. report: it is shown unhealthy with "
        "the reason and left running; restart: it is failed and restarted under the restart budget and backoff, so "
        "a chip that stays bad ends in exit code 3 (docs/npu-health.md).",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text: `<process> | <line>`; json: one object per line with time (RFC 3339, UTC), process, "
        "message, and level (our own lines) or stream (a child's) (docs/running.md, Logs).",
    )
    log_timestamps: bool = Field(
        False,
        description="Text lines start with the time (RFC 3339, UTC, milliseconds). Off by default: the container "
        "runtime already records each line's time (`kubectl logs --timestamps`, `docker logs -t`); turn it on "
        "where nothing does (a plain terminal or file). JSON lines always carry it.",
    )
    log_file_bytes: int = Field(
        20 * 1024 * 1024, ge=4096, description="Size at which a per-process log file is rotated (MINDIE_LOG_TO_FILE)."
    )
    log_file_count: int = Field(5, ge=1, description="Rotated log files kept per process.")
    server_command: str = Field("mindie_llm_server", description="Command that starts one Server.")
    coordinator_command: str = Field("mindie_motor_coordinator", description="Command that starts the Coordinator.")
    controller_command: str = Field("mindie_motor_controller", description="Command that starts the Controller.")
