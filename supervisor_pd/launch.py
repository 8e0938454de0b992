"""`supervisor-pd run`: prepare (pipeline.py), write the files, then serve and supervise until
asked to stop. The composition root: the only module that puts the runtime and the HTTP port
together."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import anyio

from supervisor_pd.api.server import ApiServer
from supervisor_pd.api.tls import server_context
from supervisor_pd.certfiles import CertKeeper
from supervisor_pd.errors import ExitCode
from supervisor_pd.pipeline import Prepared, applies_cpus, prepare, write
from supervisor_pd.plan.model import Plan
from supervisor_pd.plan.render import plan_text
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime.logs import LogSink
from supervisor_pd.runtime.mindie import MindieRules
from supervisor_pd.runtime.processes import raise_file_limit
from supervisor_pd.runtime.supervisor import Supervisor
from supervisor_pd.runtime.tlsclient import client_context
from supervisor_pd.settings import Settings


def _on(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "off", "no")


async def _serve(supervisor: Supervisor, plan: Plan, settings: Settings, certs: CertKeeper) -> int:
    """The HTTP port answers from the first moment (probes say "not started yet") to the last."""
    api = ApiServer(supervisor, plan, settings, certs)
    await api.start()
    # Everything loaded so far lives as long as the process: keep it out of the collector's full
    # passes, whose pauses would otherwise scan it and show up as probe and stream latency.
    gc.collect()
    gc.freeze()
    try:
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
    for line in plan_text(plan, str(output), written=True).rstrip("\n").splitlines():
        sink.info(line)
    for line in prepared.doctor.text().rstrip("\n").splitlines():
        sink.info(line)
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
            sink.info(f"exit code {code} ({ExitCode(code).name}): {supervisor.engine.exit_reason}")
    finally:
        sink.close()
    return code
