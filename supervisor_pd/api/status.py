"""The merged status view: the plan summary, every process and its NPUs, as plain data (no secrets)."""

from __future__ import annotations

import os
import time
from typing import Any

from supervisor_pd.plan.model import Plan
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime.snapshot import ChipView, NpuView, ProcessView, Snapshot
from supervisor_pd.runtime.spec import Kind


def _ports(plan: Plan, child: ProcessView) -> dict[str, int]:
    server = child.spec.server
    if server is not None:
        return {
            "port": server.ports.port,
            "management": server.ports.management,
            "metrics": server.ports.metrics,
            "inter_comm": server.ports.inter_comm,
        }
    if child.kind is Kind.COORDINATOR:
        c = plan.coordinator
        return {
            "predict": c.predict_port,
            "manage": c.manage_port,
            "status": c.status_port,
            "external": c.external_port,
            "alarm": c.alarm_port,
        }
    return {"port": plan.controller.port}


def process(plan: Plan, child: ProcessView) -> dict[str, Any]:
    server = child.spec.server
    health = child.health
    return {
        "name": child.name,
        "component": child.kind.value,
        "role": child.role,
        "pid": child.pid,
        "state": child.state.value,
        "ready": child.ready,
        "since": child.since,
        "reason": child.reason,
        "serving": {
            "state": child.serving.value,
            "since": child.serving_since,
            "seconds": round(max(0.0, time.time() - child.serving_since), 3),
            "detail": child.serving_detail,
        },
        "restarts": child.restarts,
        "restart_causes": dict(child.restart_causes),
        "last_restart_cause": child.last_restart_cause,
        "last_exit": child.last_exit,
        "ports": _ports(plan, child),
        "devices": [d.phy_id for d in server.devices] if server is not None else [],
        "logical_devices": [d.logical_id for d in server.devices] if server is not None else [],
        "cpus": format_cpulist(child.spec.cpus) if child.spec.cpus else None,
        "npu_fault": child.npu_fault,
        "health": None
        if health is None
        else {"ok": health.ok, "detail": health.detail, "seconds": round(health.seconds, 4), "at": child.health_wall},
        "command": list(child.spec.argv),
    }


def status(plan: Plan, view: Snapshot) -> dict[str, Any]:
    coordinator, controller = plan.coordinator, plan.controller
    return {
        "phase": view.phase.value,
        "phase_reason": view.phase_reason,
        "phase_seconds": round(time.monotonic() - view.phase_since, 3),
        "ready": view.ready,
        "ever_ready": view.ever_ready,
        "uptime_seconds": round(time.monotonic() - view.started, 3),
        "supervisor": {"pid": os.getpid(), "api_port": plan.supervisor.api_port, "api_host": plan.supervisor.api_host},
        "plan": {
            "model": plan.model_name,
            "device_type": plan.device_type.value,
            "simulated": plan.simulated,
            "world_size": plan.world_size,
            "servers": len(plan.servers),
            "p_rate": plan.p_rate,
            "d_rate": plan.d_rate,
            "coordinator": {
                "predict": f"{coordinator.predict_ip}:{coordinator.predict_port}",
                "manage": f"{coordinator.manage_ip}:{coordinator.manage_port}",
                "status_port": coordinator.status_port,
                "external_port": coordinator.external_port,
            },
            "controller": f"{controller.ip}:{controller.port}",
            "control_cpus": format_cpulist(plan.control_cpus) if plan.control_cpus else None,
        },
        "guardian": {
            "pid": view.guardian.pid,
            "restarts": view.guardian.restarts,
            "last_exit": view.guardian.last_exit,
        },
        "processes": [process(plan, child) for child in view.processes],
        "npu_health": npu_health(view.npu),
    }


def _chip(chip: ChipView) -> dict[str, Any]:
    latest = chip.latest
    reading = latest.reading if latest is not None else None
    detail = latest.detail if latest is not None else None
    return {
        "process": chip.server,
        "npu_id": chip.npu_id,
        "chip_id": chip.chip_id,
        "phy_id": chip.phy_id,
        "logical_id": chip.logical_id,
        # None: unknown in the last collection (its tool failed), or no collection yet.
        "health": reading.health if reading is not None else None,
        "error_code": detail.error_code if detail is not None else None,
        "information": chip.information,
        "temperature_c": reading.temp_c if reading is not None else None,
        "power_w": reading.power_w if reading is not None else None,
        "aicore_percent": reading.aicore_pct if reading is not None else None,
        "hbm_used_mb": reading.hbm_used_mb if reading is not None else None,
        "hbm_total_mb": reading.hbm_total_mb if reading is not None else None,
        "link_checked": chip.link_checked,
        "link": latest.link if latest is not None else None,
        "net_health": latest.net if latest is not None else None,
        "faults": list(chip.faults),
    }


def npu_health(npu: NpuView) -> dict[str, Any]:
    last = npu.last
    now = time.monotonic()
    return {
        "enabled": npu.enabled,
        "interval_seconds": npu.interval,
        "policy": npu.policy,
        "collections": npu.collections,
        "last": None
        if last is None
        else {
            "age_seconds": round(now - last.finished, 3),
            "seconds": round(last.finished - last.started, 4),
            "tool_runs": last.runs,
            "tool_errors": [
                {"tool": failure.tool, "command": failure.command, "error": failure.error} for failure in last.failures
            ],
        },
        "collecting_seconds": None if npu.running_since is None else round(now - npu.running_since, 3),
        "tool_errors_total": dict(npu.errors),
        "chips": [_chip(chip) for chip in npu.chips],
    }
