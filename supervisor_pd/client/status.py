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


def _duration(seconds: float) -> str:
    """3m12s, as runtime/serving.py writes it in the phase reason and the progress lines."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _serving(process: dict[str, Any], now: float) -> str:
    """What it is to the service, with how long for the states an operator waits on."""
    serving = process.get("serving")
    if not serving:
        return "-"
    state = serving["state"]
    if state in ("loading", "not-ready", "switching"):
        return f"{state} {_duration(now - serving['since'])}"
    return str(state)


def _restarts(process: dict[str, Any]) -> str:
    causes = process.get("restart_causes") or {}
    if not causes:
        return str(process["restarts"])
    return f"{process['restarts']} (" + ", ".join(f"{n} {cause}" for cause, n in sorted(causes.items())) + ")"


def status_table(data: dict[str, Any], now: float) -> str:
    plan = data["plan"]
    lines = [
        f"phase: {data['phase']} for {_duration(data['phase_seconds'])}: {data['phase_reason']}",
        f"model: {plan['model']}  host: {plan['device_type']}{' (simulated)' if plan['simulated'] else ''}  "
        f"servers: {plan['servers']} x {plan['world_size']} NPU  P:D {plan['p_rate']}:{plan['d_rate']}  "
        f"inference: {plan['coordinator']['predict']}",
        "",
    ]
    header = (
        "NAME",
        "ROLE",
        "STATE",
        "FOR",
        "SERVING",
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
                _age(process["since"], now),
                _serving(process, now),
                str(process["pid"] or "-"),
                _restarts(process),
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
