"""Settings -> discover -> plan -> specs, then the files: the one way `plan`, `run` and `export`
turn their inputs into something to write and run.

Every check that can refuse a command comes before anything is written: the input configs and
the output folder, the state folder's owner, the host, the plan, the commands. Only then does a
command write (`write()`), so a refused command leaves every file as it was.

A simulated host (`--simulate`) enters through `supervisor_pd.simulator.activate`, the one place
the product touches the simulator; its facts (host root, tool folder, variables) are applied here
to the settings and to the environment handed to host tools and children, explicitly: this
process's own environment is never changed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from supervisor_pd.certfiles import CertKeeper
from supervisor_pd.certs.inputs import load_tls_inputs
from supervisor_pd.certs.pki import KeyPrefetch
from supervisor_pd.confdir import ConfInputs, load_inputs, show_path
from supervisor_pd.doctor import Report, examine
from supervisor_pd.errors import InputError
from supervisor_pd.materialize import MARKER, check_output, materialize
from supervisor_pd.plan.model import Plan
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.ports import BindChecker, PortChecker
from supervisor_pd.plan.public_vars import PublicVariables
from supervisor_pd.plan.tls import may_generate
from supervisor_pd.platform.discover import discover
from supervisor_pd.platform.facts import HostFacts
from supervisor_pd.platform.hostfs import HostFS
from supervisor_pd.platform.libs import find_jemalloc, jemalloc_preloaded, with_preload
from supervisor_pd.platform.tools import which
from supervisor_pd.runtime.spec import ProcessSpec, build_specs
from supervisor_pd.settings import Settings, env_name
from supervisor_pd.statelock import StateLock, describe, holder, lock_path

OUTPUT = f"--output / {env_name('output_dir')}"


@dataclass(frozen=True)
class Prepared:
    settings: Settings  # with a simulated host's facts applied
    inputs: ConfInputs
    output: Path
    environ: dict[str, str]  # the base environment of every child and host tool
    facts: HostFacts
    plan: Plan
    specs: tuple[ProcessSpec, ...]
    lock: StateLock | None
    certs: CertKeeper
    doctor: Report  # the preflight checks; `run` refuses to start when one failed

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def applies_cpus(settings: Settings) -> bool:
    """CPU sets are applied on a real host only: a simulated one's name CPUs this machine may lack."""
    return settings.cpu_binding != "off" and settings.simulate is None


def check_commands(specs: tuple[ProcessSpec, ...] | list[ProcessSpec]) -> None:
    """Every command must be found before anything starts, not minutes later."""
    for spec in specs:
        if which(spec.argv[0], spec.env) is None:
            setting = f"SUPERVISOR_PD_{spec.kind.value.upper()}_COMMAND"
            raise InputError(setting, f"`{spec.argv[0]}` (for {spec.name}) was not found on PATH")


def prepare(
    settings: Settings, command: str, lock: bool, gate: bool = False, checker: PortChecker | None = None
) -> Prepared:
    """Everything up to the files: checked, discovered, planned, examined. `lock`: take the state
    folder (for a command that writes into it); it is held until the returned value is released.
    `gate`: a failed preflight check is refused here, before anything is written. `checker`: whether
    a port is free (default: bound here to see); a plan for another network namespace, such as a
    Kubernetes pod's, passes its own."""
    inputs = load_inputs(settings)
    output = check_output(settings.output.absolute(), inputs.conf_dir)
    taken = StateLock.acquire(settings.state_dir, command) if lock else None
    try:
        if lock:
            _check_not_live(output, taken)
        environ = dict(os.environ)
        # The keys are the slow part of making certificates: they are made while discovery runs.
        early = PublicVariables.from_environ(environ)
        keys = KeyPrefetch(1) if may_generate(settings, inputs, early) else None
        if settings.simulate is not None:
            settings, environ = _simulated(settings, environ, taken)
        facts = discover(settings, environ)
        tls_inputs = load_tls_inputs(settings, inputs, environ)
        variables = PublicVariables.from_environ(environ, settings)
        plan = make_plan(facts, inputs, settings, checker or BindChecker(), tls_inputs, variables)
        # MindIE's boot.sh preloads jemalloc for everything it starts (boot.sh:28-37).
        jemalloc = find_jemalloc(HostFS(settings.host_root))
        preload = with_preload(environ.get("LD_PRELOAD"), jemalloc)
        if preload:
            environ["LD_PRELOAD"] = preload
        specs = tuple(build_specs(plan, settings, environ, output, settings.state_dir.absolute()))
        check_commands(specs)
        report = examine(settings, facts, plan, environ, jemalloc_preloaded(preload))
        refusal = report.refusal() if gate else None
        if refusal is not None:
            raise refusal
    except BaseException:
        if taken is not None:
            taken.release()
        raise
    return Prepared(
        settings, inputs, output, environ, facts, plan, specs, taken, CertKeeper(plan.tls, tls_inputs, keys), report
    )


def write(prepared: Prepared) -> Path:
    """The plan's files, all or nothing, and the pod's certificates; a run's output folder names its
    owner's lock."""
    owner = prepared.lock.path if prepared.lock is not None else None
    prepared.certs.first()
    return materialize(prepared.plan, prepared.output, owner=owner)


def _check_not_live(output: Path, taken: StateLock | None) -> None:
    """An output folder that a running supervisor uses is never rewritten under it."""
    try:
        marker = orjson.loads((output / MARKER).read_bytes())
    except (OSError, ValueError):
        return
    owner = marker.get("owner") if isinstance(marker, dict) else None
    if not isinstance(owner, str) or (taken is not None and Path(owner) == taken.path):
        return
    pid = holder(Path(owner))
    if pid is not None:
        raise InputError(
            OUTPUT,
            f"{show_path(output)} is the config folder of a running supervisor-pd ({describe(pid)}); it is not "
            "rewritten under it: stop it first, or choose another folder",
        )


def _simulated(settings: Settings, environ: dict[str, str], taken: StateLock | None) -> tuple[Settings, dict[str, str]]:
    from supervisor_pd.simulator.activate import SimulatorError, activate

    assert settings.simulate is not None
    # A live stack's simulated host is used as it is, never rebuilt under it.
    live = taken is None and holder(lock_path(settings.state_dir)) is not None
    try:
        host = activate(settings.simulate.value, settings.state_dir, build=not live)
    except SimulatorError as exc:
        raise InputError(env_name("state_dir"), str(exc)) from None
    return _apply(settings, environ, host.root, host.bin_dir, host.env)


def _apply(
    settings: Settings, environ: dict[str, str], root: Path, bin_dir: Path, variables: Mapping[str, str]
) -> tuple[Settings, dict[str, str]]:
    """The simulated host's facts, as if the container had them: its tools first on PATH, its
    variables where the user set none, discovery reading its fixture tree."""
    environ = dict(environ)
    environ["PATH"] = f"{bin_dir}{os.pathsep}{environ.get('PATH', os.defpath)}"
    for key, value in variables.items():
        environ.setdefault(key, value)
    update: dict[str, object] = {"host_root": root}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str) and alias in variables and getattr(settings, name) is None:
            update[name] = variables[alias]
    return settings.model_copy(update=update), environ
