"""The merged status view: the plan summary and every process, as plain data (no secrets)."""

from __future__ import annotations

import os
import time
from typing import Any

from supervisor_pd.plan.model import Plan
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime.snapshot import ProcessView, Snapshot
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
        "restarts": child.restarts,
        "last_exit": child.last_exit,
        "ports": _ports(plan, child),
        "devices": [d.phy_id for d in server.devices] if server is not None else [],
        "logical_devices": [d.logical_id for d in server.devices] if server is not None else [],
        "cpus": format_cpulist(child.spec.cpus) if child.spec.cpus else None,
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
    }
