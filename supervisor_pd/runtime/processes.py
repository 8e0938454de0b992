"""Spawning children and keeping track of their process groups, zombies and leftovers.

Every child starts in its own session (so its process group is its own) through the trampoline
(parent-death signal and CPU set before exec). The supervisor reaps every zombie, its own
children's and orphans' alike, and registers as a child subreaper when it is not PID 1. A small
guardian process kills the groups a dead supervisor leaves behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime.spec import ProcessSpec
from supervisor_pd.settings import without_secrets

HERE = Path(__file__).resolve().parent
TRAMPOLINE = HERE / "trampoline.py"
GUARDIAN = HERE / "guardian.py"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """As PID 1 we reap everything anyway; otherwise ask the kernel to hand us orphans."""
    if os.getpid() == 1:
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap() -> list[tuple[int, int]]:
    """Collect every exited child: (pid, returncode), a negative code for a signal."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, os.waitstatus_to_exitcode(status)))


def spawn(spec: ProcessSpec, cpus: tuple[int, ...] | None) -> subprocess.Popen[bytes]:
    """Start `spec` in a new session via the trampoline; stdout and stderr are pipes."""
    spec.cwd.mkdir(parents=True, exist_ok=True, mode=0o750)
    cpu_text = format_cpulist(cpus) if cpus else "-"
    argv = [
        sys.executable,
        "-I",
        "-S",
        str(TRAMPOLINE),
        str(os.getpid()),
        str(int(signal.SIGKILL)),
        cpu_text,
        "--",
        *spec.argv,
    ]
    return subprocess.Popen(
        argv,
        cwd=spec.cwd,
        env=spec.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class Guardian:
    """The watchdog that kills our children's groups if this process dies."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(GUARDIAN)],
            env=without_secrets(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    def _send(self, line: str) -> None:
        if self._process is None or self._process.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._process.stdin.write(line.encode() + b"\n")
            self._process.stdin.flush()

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def close(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a pid from a reused one)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])


class PidFile:
    """The groups we started, so that a restarted supervisor can clean up after a dead one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, children: dict[str, tuple[int, int | None]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        data = {name: {"pid": pid, "start": start} for name, (pid, start) in children.items()}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(self.path)

    def sweep(self) -> list[str]:
        """Kill the groups a previous supervisor left running; returns their names."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        killed = []
        for name, entry in data.items():
            pid, start = entry.get("pid"), entry.get("start")
            if isinstance(pid, int) and start is not None and start_time(pid) == start:
                signal_group(pid, signal.SIGKILL)
                killed.append(name)
        return killed
