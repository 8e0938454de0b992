"""`supervisor-pd status` as a table: one row per process, then NPU health. Standard library only,
as the rest of the operator commands (client/__init__.py)."""

from __future__ import annotations

from typing import Any


def _age(since: float | None, now: float) -> str:
    if since is None:
        return "-"
    seconds = max(0, int(now - since))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _health(process: dict[str, Any]) -> str:
    health = process.get("health")
    if not health:
        return "-"
    mark = "ok" if health["ok"] else "FAIL"
    return f"{mark} {health['seconds'] * 1000:.1f}ms"


def _exit(process: dict[str, Any]) -> str:
    last = process.get("last_exit")
    return "-" if last is None else str(last)


def _ready(process: dict[str, Any]) -> str:
    """Whether its readiness counts now; the Controller has none of its own."""
    if process.get("component") == "controller" or "ready" not in process:
        return "-"
    return "yes" if process["ready"] else "no"


def status_table(data: dict[str, Any], now: float) -> str:
    plan = data["plan"]
    lines = [
        f"phase: {data['phase']} ({data['phase_reason']}) for {_age(now - data['phase_seconds'], now)}",
        f"model: {plan['model']}  host: {plan['device_type']}{' (simulated)' if plan['simulated'] else ''}  "
        f"servers: {plan['servers']} x {plan['world_size']} NPU  P:D {plan['p_rate']}:{plan['d_rate']}  "
        f"inference: {plan['coordinator']['predict']}",
        "",
    ]
    header = (
        "NAME",
        "ROLE",
        "STATE",
        "READY",
        "FOR",
        "PID",
        "RESTARTS",
        "LAST EXIT",
        "PORTS",
        "NPUS",
        "CPUS",
        "HEALTH",
    )
    rows = [header]
    for process in data["processes"]:
        rows.append(
            (
                process["name"],
                process["role"] or process["component"],
                process["state"],
                _ready(process),
                _age(process["since"], now),
                str(process["pid"] or "-"),
                str(process["restarts"]),
                _exit(process),
                ",".join(str(port) for port in process["ports"].values()),
                ",".join(str(device) for device in process["devices"]) or "-",
                process["cpus"] or "-",
                _health(process),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines + _npu_lines(data)) + "\n"


def _npu_lines(data: dict[str, Any]) -> list[str]:
    """NPU and link health under the table: the faults with their reasons, and tools that fail."""
    npu = data.get("npu_health")
    if not npu:
        return []
    if not npu["enabled"]:
        return ["", "npu health: not watched"]
    last = npu["last"]
    read = (
        "no collection yet" if last is None else f"read {last['age_seconds']:.0f}s ago ({last['tool_runs']} tool runs)"
    )
    lines = ["", f"npu health: every {npu['interval_seconds']:g}s, policy {npu['policy']}; {read}"]
    lines += [f"  {p['name']}: {p['npu_fault']}" for p in data["processes"] if p.get("npu_fault")]
    lines += [f"  unknown: {failure['error']}" for failure in (last or {}).get("tool_errors", [])[:3]]
    return lines
