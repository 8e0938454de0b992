"""`supervisor-pd run`: discover, plan, write the files, then supervise until asked to stop."""

from __future__ import annotations

import gc
import os
import shutil

import anyio

from supervisor_pd.api.server import ApiServer
from supervisor_pd.confdir import load_inputs
from supervisor_pd.errors import ExitCode, InputError
from supervisor_pd.materialize import check_output, materialize
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.ports import BindChecker
from supervisor_pd.plan.render import plan_text
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.platform.discover import discover
from supervisor_pd.runtime.logs import LogSink
from supervisor_pd.runtime.spec import ProcessSpec, build_specs
from supervisor_pd.runtime.supervisor import Supervisor
from supervisor_pd.settings import Settings


def _on(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "off", "no")


def applies_cpus(settings: Settings) -> bool:
    """CPU sets are applied on a real host only: a simulated one's name CPUs this machine may lack."""
    return settings.cpu_binding != "off" and settings.simulate is None


def check_commands(specs: list[ProcessSpec]) -> None:
    """Every command must be found before anything starts, not minutes later."""
    for spec in specs:
        path = spec.env.get("PATH", os.defpath)
        if shutil.which(spec.argv[0], path=path) is None:
            setting = f"SUPERVISOR_PD_{spec.kind.value.upper()}_COMMAND"
            raise InputError(setting, f"`{spec.argv[0]}` (for {spec.name}) was not found on PATH")


async def _serve(supervisor: Supervisor, settings: Settings) -> int:
    """The HTTP port answers from the first moment (probes say "not started yet") to the last."""
    api = ApiServer(supervisor, settings)
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
    inputs = load_inputs(settings)
    facts = discover(settings)
    plan = make_plan(facts, inputs, settings, BindChecker())
    # Every check that can refuse the run comes before the files are written.
    target = check_output(settings.output, inputs.conf_dir)
    specs = build_specs(plan, settings, dict(os.environ), target, settings.state_dir)
    check_commands(specs)
    output = materialize(plan, target)
    file_dir = settings.state_dir / "logs" if _on(settings.log_to_file) else None
    sink = LogSink(
        settings.log_format, file_dir=file_dir, file_bytes=settings.log_file_bytes, file_count=settings.log_file_count
    )
    for line in plan_text(plan, str(output), written=True).rstrip("\n").splitlines():
        sink.info(line)
    apply_cpus = applies_cpus(settings)
    if settings.simulate is not None and settings.cpu_binding != "off":
        sink.info("simulated host: CPU sets are planned for its CPUs and not applied on this machine")
    elif apply_cpus and plan.control_cpus:
        mine = set(plan.control_cpus) & os.sched_getaffinity(0)
        if mine:
            os.sched_setaffinity(0, mine)
            sink.info(f"supervisor bound to CPUs {format_cpulist(mine)}")
    supervisor = Supervisor(plan, specs, settings, sink, settings.state_dir, apply_cpus)
    try:
        code = anyio.run(_serve, supervisor, settings, backend="asyncio", backend_options={"use_uvloop": True})
        if supervisor.exit_reason:
            sink.info(f"exit code {code} ({ExitCode(code).name}): {supervisor.exit_reason}")
    finally:
        sink.close()
    return code
