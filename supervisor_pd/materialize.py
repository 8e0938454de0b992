"""Writing a plan's files: all or nothing.

Files go to a staging folder next to the output folder, are fsynced, and the folder is then
swapped into place in one step (renameat2 RENAME_EXCHANGE where the kernel has it). A reader
sees the old complete set or the new complete set, never a mix. Files are 0640, folders 0750.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path

import orjson

from supervisor_pd import __version__
from supervisor_pd.confdir import show_path
from supervisor_pd.errors import InputError
from supervisor_pd.plan.model import Plan
from supervisor_pd.settings import env_name

MARKER = ".supervisor-pd-plan"
FILE_MODE = 0o640
DIR_MODE = 0o750
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def check_output(output: Path, conf_dir: Path) -> Path:
    """Refuse an output folder that would overwrite the inputs or someone else's files."""
    where = f"--output / {env_name('output_dir')}"
    target = output.absolute()
    try:
        real_target = target.resolve()
        real_conf = conf_dir.resolve()
    except (OSError, RuntimeError) as exc:
        raise InputError(where, f"{show_path(target)} cannot be resolved: {exc}") from None
    if real_target == real_conf or real_conf.is_relative_to(real_target):
        raise InputError(
            where,
            f"{show_path(target)} holds the input config folder; the inputs are never overwritten: "
            "choose another folder",
        )
    if target.exists() or target.is_symlink():
        if target.is_symlink() or not target.is_dir():
            raise InputError(where, f"{show_path(target)} exists and is not a folder")
        try:
            entries = {entry.name for entry in target.iterdir()}
        except OSError as exc:
            raise InputError(where, f"{show_path(target)} cannot be read: {exc.strerror}") from None
        if entries and MARKER not in entries:
            raise InputError(
                where,
                f"{show_path(target)} is not empty and was not written by supervisor-pd; choose an empty or new folder",
            )
    return target


def materialize(plan: Plan, output: Path, owner: Path | None = None) -> Path:
    """Write every file of `plan` into `output`, replacing a previous plan there atomically.

    `owner`: the state folder lock of the command that will use these files; the marker names it
    so that no other command rewrites the folder while that lock is held."""
    target = check_output(output, Path(plan.conf_dir))
    where = f"--output / {env_name('output_dir')}"
    staging: Path | None = None
    try:
        make_parents(target.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
        staging.chmod(DIR_MODE)
        for planned in plan.files:
            write_file(staging / planned.name, planned.content)
        summary: dict[str, object] = {
            "written_by": f"supervisor-pd {__version__}",
            "files": [f.name for f in plan.files],
        }
        if owner is not None:
            summary["owner"] = str(owner)
        write_file(staging / MARKER, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        fsync_dir(staging)
        if target.exists():
            swap(staging, target)
            shutil.rmtree(staging)  # now holds the previous plan
        else:
            staging.rename(target)
        staging = None
        fsync_dir(target.parent)
    except OSError as exc:
        raise InputError(where, f"{show_path(target)} cannot be written: {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def make_parents(folder: Path) -> None:
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        path.mkdir(mode=DIR_MODE)
        path.chmod(DIR_MODE)


def write_file(path: Path, content: bytes, mode: int = FILE_MODE) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap(new: Path, old: Path) -> None:
    """Exchange two folders in one step if the kernel allows, else in two renames."""
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(libc_name, use_errno=True)
            result = libc.renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(old), _RENAME_EXCHANGE)
            if result == 0:
                return
    aside = old.with_name(old.name + ".previous")
    if aside.exists():
        shutil.rmtree(aside)
    old.rename(aside)
    new.rename(old)
    aside.rename(new)
