"""One owner per state folder: an exclusive lock held for as long as a command uses the folder.

`run` holds it for its whole life; `plan` (when it writes) and `export` hold it while they work.
A second owner is refused with the pid of the first, so two supervisors never share the generated
configs, the simulated host, the record of process groups or the control socket, and the sweep of
an earlier run's leftovers happens only when that earlier run is really gone (its lock was free).
The lock is `flock` on `<state>/run/lock`: the kernel drops it when its holder dies, even by
SIGKILL, and the file is opened close-on-exec, so no child inherits it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from supervisor_pd.confdir import show_path
from supervisor_pd.errors import InputError
from supervisor_pd.settings import env_name

LOCK_NAME = "run/lock"


def lock_path(state_dir: Path) -> Path:
    return state_dir.absolute() / LOCK_NAME


def holder(path: Path) -> int | None:
    """The pid holding the lock at `path`, or None when nobody does (or it cannot be told)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fd) or -1
        return None
    finally:
        os.close(fd)


def _pid_in(fd: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    return 0


def _lock(fd: int) -> bool:
    # A few tries: holder() takes the lock shared for an instant to test it.
    for attempt in range(5):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if attempt < 4:
                time.sleep(0.02)
            continue
        return True
    return False


def describe(pid: int) -> str:
    return f"pid {pid}" if pid > 0 else "a process whose pid could not be read"


class StateLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path, command: str) -> StateLock:
        """Take the state folder for `command`, or raise InputError naming who has it."""
        path = lock_path(state_dir)
        where = env_name("state_dir")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise InputError(
                where, f"{show_path(state_dir.absolute())} cannot hold supervisor-pd's state ({exc.strerror})"
            ) from None
        if not _lock(fd):
            pid = _pid_in(fd)
            os.close(fd)
            raise InputError(
                where,
                f"{show_path(state_dir.absolute())} is in use by another supervisor-pd ({describe(pid)}); stop it "
                f"first, or give this {command} another state folder",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays for the next owner
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
