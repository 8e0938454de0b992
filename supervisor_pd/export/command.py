"""`supervisor-pd export supervisord`: what `run` does up to the first start, then a supervisord.conf.

A bad input is found before anything is written; then the conf is staged next to its target,
the plan's files are written (atomically, as `plan` does), the working folders made, and the
staged conf renamed over the target in one step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from supervisor_pd.confdir import show_path
from supervisor_pd.errors import InputError
from supervisor_pd.export.supervisord import Dropped, Tools, render
from supervisor_pd.materialize import DIR_MODE, fsync_dir, make_parents, write_file
from supervisor_pd.pipeline import Prepared, applies_cpus, prepare, write
from supervisor_pd.plan.ports import PortProblem
from supervisor_pd.platform.facts import Level
from supervisor_pd.settings import Settings, env_name

DESTINATION = "--output"


@dataclass(frozen=True)
class Exported:
    text: str
    warnings: tuple[str, ...]


@contextlib.contextmanager
def output_dir_flag() -> Iterator[None]:
    """`run` and `plan` call the generated-config folder --output; here that flag is --output-dir."""
    try:
        yield
    except InputError as exc:
        if exc.where != "--output" and not exc.where.startswith("--output /"):
            raise
        raise InputError("--output-dir" + exc.where.removeprefix("--output"), exc.problem) from None


def export_supervisord(settings: Settings, destination: Path | None) -> Exported:
    """Plan, write the MindIE files, and write (or, without a destination, return) the conf."""
    if destination is not None:
        _check_destination(destination.absolute(), settings.output.absolute())
    with output_dir_flag():
        prepared = prepare(settings, "export", lock=True)
    try:
        return _export(prepared, destination)
    finally:
        prepared.release()


def export_kubernetes(settings: Settings, destination: Path | None, replicas: str | None, scale_out: bool) -> Exported:
    """Plan the pod as `run` would in it (nothing written but the simulated host), then write (or,
    without a destination, return) the manifests."""
    from supervisor_pd.export.kubernetes import manifests, pod_facts, replicas_value

    count = replicas_value(replicas, scale_out)
    target = _check_destination(destination.absolute(), None) if destination is not None else None
    # The pod has a network namespace of its own: a port taken on this machine is free there.
    prepared = prepare(settings, "export", lock=False, checker=_PodPorts())
    text = manifests(pod_facts(prepared, count, scale_out))
    if target is not None:
        staged = _stage(target, text.encode())
        try:
            _commit(staged, target)
        finally:
            staged.unlink(missing_ok=True)
    warnings = [
        f"{notice.subject}: {notice.message}" for notice in prepared.plan.notices if notice.level is Level.WARNING
    ]
    return Exported(text, tuple(warnings))


class _PodPorts:
    """Every port free, as in a new pod."""

    def problem(self, ip: str, port: int) -> PortProblem | None:
        return None


def _export(prepared: Prepared, destination: Path | None) -> Exported:
    settings, output, plan = prepared.settings, prepared.output, prepared.plan
    target = _check_destination(destination.absolute(), output) if destination is not None else None
    state = settings.state_dir.absolute()
    environ = prepared.environ
    specs = list(prepared.specs)
    if not applies_cpus(settings):
        specs = [dataclasses.replace(spec, cpus=None) for spec in specs]
    tools = Tools(
        env=_tool("env", "coreutils"),
        taskset=_tool("taskset", "util-linux") if any(spec.cpus for spec in specs) else "taskset",
    )
    exported = render(specs, settings, state, environ, tools)
    # Staged first, so that a destination that cannot be written fails before the plan's files do.
    staged = _stage(target, exported.text.encode()) if target is not None else None
    try:
        with output_dir_flag():
            write(prepared)
        for spec in specs:
            try:
                spec.cwd.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            except OSError as exc:
                where = env_name("state_dir")
                raise InputError(where, f"{show_path(spec.cwd)} cannot be made: {exc.strerror}") from None
        if staged is not None and target is not None:
            _commit(staged, target)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    warnings = [f"{notice.subject}: {notice.message}" for notice in plan.notices if notice.level is Level.WARNING]
    warnings += _dropped_warnings(exported.dropped, len(specs))
    return Exported(exported.text, tuple(warnings))


def _dropped_warnings(dropped: tuple[Dropped, ...], programs: int) -> list[str]:
    """One line per variable, not per program: most are left out of every program alike."""
    by_name: dict[str, tuple[str, list[str]]] = {}
    for item in dropped:
        by_name.setdefault(item.name, (item.reason, []))[1].append(item.program)
    lines = []
    for name, (reason, names) in by_name.items():
        where = "any program" if len(names) == programs else ", ".join(names)
        lines.append(
            f"{name} is not written for {where} ({reason}); it reaches them only from supervisord's own environment"
        )
    return lines


def _tool(name: str, package: str) -> str:
    """The absolute path: supervisord looks a command up on its own PATH, not the program's."""
    found = shutil.which(name)
    if found is None:
        raise InputError(name, f"not found on PATH; the supervisord programs start through it (install {package})")
    return str(Path(found).absolute())


def _check_destination(target: Path, output: Path | None) -> Path:
    if target.is_dir():
        raise InputError(DESTINATION, f"{show_path(target)} is a folder; give the path of the file to write")
    if output is not None and target.parent.resolve().is_relative_to(output.resolve()):
        raise InputError(
            DESTINATION,
            f"{show_path(target)} is inside the generated config folder {show_path(output)}, which every "
            "plan replaces as a whole; choose another place",
        )
    return target


def _stage(target: Path, content: bytes) -> Path:
    """The new content in a temporary sibling of `target`, fsynced, mode 0640."""
    staged = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        make_parents(target.parent)
        write_file(staged, content)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise InputError(DESTINATION, f"{show_path(target)} cannot be written: {exc.strerror or exc}") from None
    return staged


def _commit(staged: Path, target: Path) -> None:
    """Readers see the old file or the new one, never a part."""
    try:
        staged.replace(target)
        fsync_dir(target.parent)
    except OSError as exc:
        raise InputError(DESTINATION, f"{show_path(target)} cannot be written: {exc.strerror or exc}") from None
