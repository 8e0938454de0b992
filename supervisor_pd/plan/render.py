"""Showing a plan: a readable table for people, JSON for programs."""

from __future__ import annotations

import textwrap
from typing import Any

from supervisor_pd.plan.model import Plan, PortOrigin, Role
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.platform.facts import Level

WIDTH = 160  # about the widest line of the tables above (the TLS links)


def plan_json(plan: Plan, output: str, written: bool) -> dict[str, Any]:
    data = plan.model_dump(mode="json", exclude={"files"})
    data["files"] = [
        {"name": planned.name, "bytes": len(planned.content), "sha256": planned.sha256} for planned in plan.files
    ]
    data["output"] = output
    data["written"] = written
    return data


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(headers[i]), *(len(row[i]) for row in rows)) if rows else len(headers[i]) for i in range(len(headers))
    ]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return lines


def _wrapped(text: str) -> list[str]:
    """`text` as lines of at most WIDTH where it can break at a space; a value (a path, say) is
    never cut, so one longer than a line gets a line of its own."""
    return textwrap.wrap(
        text, WIDTH, initial_indent="  ", subsequent_indent="      ", break_long_words=False, break_on_hyphens=False
    )


def _cpus(cpus: tuple[int, ...] | None) -> str:
    return format_cpulist(cpus) if cpus else "-"


def plan_text(plan: Plan, output: str, written: bool) -> str:
    servers = plan.servers
    chips = sum(len(server.devices) for server in servers)
    if plan.p_rate:
        split = f"P:D {plan.p_rate}:{plan.d_rate} -> {len(plan.prefill)} prefill, {len(plan.decode)} decode"
    else:
        split = "P:D decided by the Controller"
    host = plan.device_type.label + (f" (simulated: {plan.simulated})" if plan.simulated else "")
    out = [
        f"supervisor-pd plan: {host}",
        f"  {chips} NPU chips / worldSize {plan.world_size} = {len(servers)} Servers; {split}",
        f"  device type from {plan.device_type_source}; P:D from {plan.rate_source}",
        f"  inputs:  {plan.conf_dir}  ({plan.conf_source})",
        f"  output:  {output}  ({'written' if written else 'not written: --dry-run'})",
        "",
        "Servers",
    ]
    rows = []
    for server in servers:
        rows.append(
            [
                str(server.index),
                server.role.value if server.role is not Role.AUTO else "auto",
                ",".join(str(d.phy_id) for d in server.devices),
                ",".join(str(d.logical_id) for d in server.devices),
                ",".join(d.device_ip for d in server.devices),
                "-" if server.numa_node is None else str(server.numa_node),
                _cpus(server.cpus),
                str(server.ports.port),
                str(server.ports.management),
                str(server.ports.metrics),
                str(server.ports.inter_comm),
            ]
        )
    out += _table(
        ["#", "role", "NPUs", "logical", "device IPs", "NUMA", "CPUs", "port", "mgmt", "metrics", "intercomm"], rows
    )
    if plan.server_settings:
        # Where each value MindIE's public variables can set comes from: a variable beats the file.
        out += ["", "Server settings (every config<n>.json; MINDIE_* variables override the input file)"]
        out += _table(
            ["setting", "value", "from"],
            [[s.field.rsplit(".", 1)[-1], s.value, s.origin] for s in plan.server_settings],
        )
    coordinator, controller = plan.coordinator, plan.controller
    out += ["", "Components"]
    out += _table(
        ["name", "address", "ports", "CPUs"],
        [
            [
                "coordinator",
                f"{coordinator.predict_ip} / {coordinator.manage_ip}",
                f"predict {coordinator.predict_port}, manage {coordinator.manage_port}, status "
                f"{coordinator.status_port}, external {coordinator.external_port}, alarm {coordinator.alarm_port}",
                _cpus(plan.control_cpus),
            ],
            [
                "controller",
                controller.ip,
                f"http {controller.port}, node_manager {controller.node_manager_port} (not listened on)",
                _cpus(plan.control_cpus),
            ],
            ["supervisor", plan.supervisor.api_host, f"api {plan.supervisor.api_port}", _cpus(plan.control_cpus)],
        ],
    )
    out += _tls(plan)
    moved = [p for p in plan.ports if p.origin is PortOrigin.MOVED]
    if moved:
        out += ["", "Ports moved"]
        out += [f"  {p.owner} {p.field}: {p.requested} -> {p.port}: {p.reason}" for p in moved]
    out += ["", "Settings written (single-container PD needs them)"]
    for setting in plan.settings_written:
        change = f" (was {setting.previous})" if setting.previous not in (None, setting.value) else ""
        out += _wrapped(f"{setting.file}: {setting.field} = {setting.value}{change}  - {setting.why}")
    for level, title in ((Level.WARNING, "Warnings"), (Level.INFO, "Notes")):
        items = [n for n in plan.notices if n.level is level]
        if items:
            out += ["", title]
            out += [f"  {n.subject}: {n.message}" for n in items]
    out += ["", "Files"]
    out += [f"  {planned.name}  ({len(planned.content)} bytes)" for planned in plan.files]
    return "\n".join(out) + "\n"


def run_summary(plan: Plan, output: str, logs: str) -> list[str]:
    """What `run` says first, in a few lines: where it runs, what it starts, where to reach it and
    where its files went; the full plan follows it in the log."""
    servers = plan.servers
    chips = sum(len(server.devices) for server in servers)
    host = plan.device_type.label + (f" (simulated: {plan.simulated})" if plan.simulated else "")
    roles: dict[str, list[str]] = {}
    for server in servers:
        roles.setdefault(server.role.value if server.role is not Role.AUTO else "auto", []).append(server.name)
    groups = "; ".join(f"{role} {', '.join(names)}" for role, names in roles.items())
    split = f"P:D {plan.p_rate}:{plan.d_rate}" if plan.p_rate else "roles decided by the Controller"
    ports = [port for server in servers for port in server.ports.model_dump().values()]
    moved = sum(1 for p in plan.ports if p.origin is PortOrigin.MOVED)
    tls = plan.tls
    certificates = f"; certificates in {tls.folder}" if tls.folder else ""
    return [
        f"supervisor-pd run: {host}, {chips} NPU chips",
        f"  Servers: {len(servers)} of worldSize {plan.world_size}, {split}: {groups}",
        f"  ports:   {plan.supervisor.api_host}:{plan.supervisor.api_port} supervisor-pd (inference, probes, status, "
        f"metrics); Coordinator predict {plan.coordinator.predict_port}; Servers {min(ports)}-{max(ports)}"
        + (f"; {moved} moved (see Ports moved)" if moved else ""),
        f"  configs: {output}",
        f"  logs:    {logs}",
        f"  TLS:     {tls.mode} ({tls.mode_source}){certificates}",
    ]


def _tls(plan: Plan) -> list[str]:
    tls = plan.tls
    out = ["", f"TLS: {tls.mode} ({tls.mode_source})"]
    if tls.folder is not None:
        out.append(
            f"  files:   {tls.folder}/{{ca.pem, cert.pem, cert.key.pem, key_pwd.txt{', crl.pem' if tls.crl else ''}}}"
        )
        out.append(f"           mode 0400, in the Server's home {tls.server_home} ({tls.home_source})")
        out.append(f"  signer:  {tls.signer}")
        if tls.generation == "kmc":
            out.append(
                f"  MindIE:  old, KMC-encrypted keys ({tls.generation_source}); keystore and encrypted password "
                f"copied with the certificate; HSECEASY_PATH={tls.hseceasy_path}; supervisor_pd presents client.pem"
            )
        lifetime = f"; valid {tls.lifetime_hours:g} h, renewed after two thirds" if tls.lifetime_hours else ""
        out.append(f"  subject: IP {', '.join(tls.san_ips)}; DNS {', '.join(tls.san_names)}{lifetime}")
    out += _table(
        ["link", "TLS", "switches"],
        [[link.link, "mTLS 1.3" if link.encrypted else "plain", "; ".join(link.switches)] for link in tls.links],
    )
    return out
