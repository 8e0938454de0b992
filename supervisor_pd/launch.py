"""`supervisor-pd run`: prepare (pipeline.py), write the files, then serve and supervise until
asked to stop. The composition root: the only module that puts the runtime and the HTTP port
together."""

from __future__ import annotations

import gc
import os
import shutil
import sys
from pathlib import Path

import anyio

from supervisor_pd.api.server import ApiServer
from supervisor_pd.api.tls import server_context
from supervisor_pd.certfiles import CertKeeper
from supervisor_pd.errors import ExitCode
from supervisor_pd.pipeline import Prepared, applies_cpus, prepare, write
from supervisor_pd.plan.model import Plan
from supervisor_pd.plan.render import plan_text, run_summary
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.platform.facts import Level
from supervisor_pd.runtime.logs import LogSink
from supervisor_pd.runtime.mindie import MindieRules
from supervisor_pd.runtime.processes import raise_file_limit
from supervisor_pd.runtime.supervisor import Supervisor
from supervisor_pd.runtime.tlsclient import client_context
from supervisor_pd.settings import Settings


# How often the wait for the first `service ready` looks at the phase: a hint, not a deadline.
def _on(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "off", "no")


def _program() -> str:
    """How to call this command again: by its name when that is what PATH finds, else as started."""
    started = sys.argv[0]
    if Path(started).name != "supervisor-pd":
        return "supervisor-pd"
    found = shutil.which("supervisor-pd")
    return "supervisor-pd" if found and Path(found).resolve() == Path(started).resolve() else started


def first_steps(plan: Plan, settings: Settings, program: str) -> list[str]:
    """Three commands to try once the service is ready, with this run's port."""
    host = plan.supervisor.api_host
    scheme = "https" if settings.api_tls_cert is not None else "http"
    base = f"{scheme}://{'localhost' if host == '0.0.0.0' else host}:{plan.supervisor.api_port}"
    chat = '{"messages":[{"role":"user","content":"hi"}],"stream":true}'
    # Another shell finds the control socket only where it reads the same settings: name the port
    # when this run's socket is not the default one.
    default_socket = settings.api_socket is None and "state_dir" not in settings.model_fields_set
    return [
        "try it:",
        f"  curl -N {base}/v1/chat/completions -d '{chat}'",
        f"  {program} status" + ("" if default_socket else f" --url {base}"),
        f"  curl {base}/metrics",
    ]


async def _serve(supervisor: Supervisor, plan: Plan, settings: Settings, certs: CertKeeper) -> int:
    """The HTTP port answers from the first moment (probes say "not started yet") to the last."""
    api = ApiServer(supervisor, plan, settings, certs)
    await api.start()
    # Everything loaded so far lives as long as the process: keep it out of the collector's full
    # passes, whose pauses would otherwise scan it and show up as probe and stream latency.
    gc.collect()
    gc.freeze()
    try:
        supervisor.engine.first_ready_lines = first_steps(plan, settings, _program())
        return await supervisor.run()
    finally:
        await api.stop()


def run(settings: Settings) -> int:
    settings.token()  # a bad token file stops the run before any work, not after the files are written
    server_context(settings)  # so does a bad certificate for the HTTP port
    prepared = prepare(settings, "run", lock=True, gate=True)
    try:
        return _run(prepared, write(prepared))
    finally:
        prepared.release()


def _run(prepared: Prepared, output: Path) -> int:
    settings, plan, specs, certs = prepared.settings, prepared.plan, prepared.specs, prepared.certs
    file_dir = settings.state_dir / "logs" if _on(settings.log_to_file) else None
    sink = LogSink(
        settings.log_format,
        file_dir=file_dir,
        file_bytes=settings.log_file_bytes,
        file_count=settings.log_file_count,
        timestamps=settings.log_timestamps,
    )
    _show_plan(sink, prepared, output, file_dir)
    before, after = raise_file_limit()
    if after != before:
        sink.info(f"file descriptor limit raised from {before} to {after} (children get {before})")
    apply_cpus = applies_cpus(settings)
    if settings.simulate is not None and settings.cpu_binding != "off":
        sink.info("simulated host: CPU sets are planned for its CPUs and not applied on this machine")
    elif apply_cpus and plan.control_cpus:
        mine = set(plan.control_cpus) & os.sched_getaffinity(0)
        if mine:
            os.sched_setaffinity(0, mine)
            sink.info(f"supervisor bound to CPUs {format_cpulist(mine)}")
    supervisor = Supervisor(
        specs,
        settings,
        sink,
        settings.state_dir,
        apply_cpus,
        rules=MindieRules(plan, settings.controller_stall_seconds, settings.coordinator_quarantine_seconds),
        file_limit=before if after != before else None,
        tls=client_context(plan.tls),
        host_env=prepared.environ,  # NPU health runs the host tools discovery ran
    )
    try:
        code = anyio.run(
            _serve, supervisor, plan, settings, certs, backend="asyncio", backend_options={"use_uvloop": True}
        )
        if supervisor.engine.exit_reason:
            said = sink.info if code == ExitCode.OK else sink.error
            said(f"exit code {code} ({ExitCode(code).name}): {supervisor.engine.exit_reason}")
    finally:
        sink.close()
    return code


def _show_plan(sink: LogSink, prepared: Prepared, output: Path, file_dir: Path | None) -> None:
    """A few lines first (what `kubectl logs | head` shows), each warning at its level, then the
    whole plan and the preflight checks: the log is the one record of what this run planned (a
    later `plan --dry-run` would find this run's ports taken and plan others)."""
    plan, doctor = prepared.plan, prepared.doctor
    logs = "stdout" + (f" and {file_dir}/<process>.log" if file_dir is not None else "")
    for line in run_summary(plan, str(output), logs):
        sink.info(line)
    for notice in plan.notices:
        if notice.level is Level.WARNING:
            sink.warning(f"{notice.subject}: {notice.message}")
    for check in doctor.warnings:
        sink.warning(f"preflight {check.id}: {check.seen}" + (f"; fix: {check.fix}" if check.fix else ""))
    sink.info("the full plan (as `supervisor-pd plan` shows it) and the preflight checks:")
    for line in plan_text(plan, str(output), written=True).rstrip("\n").splitlines():
        sink.info(line)
    for line in doctor.text().rstrip("\n").splitlines():
        sink.info(line)
