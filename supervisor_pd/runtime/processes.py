"""Spawning children and finding everything they left: process groups, descendants, zombies.

Every child starts in its own process group, inside the supervisor's session, through the trampoline
(parent-death signal, CPU set and the caller's original file limit before exec). Every child
and everything it starts carries `SUPERVISOR_PD_PROCESS=<instance>/<name>` in its environment:
a worker that leaves the process group (`setsid`, as worker launchers do) is still found by it,
by the supervisor at each restart and at the stop, and by the guardian if the supervisor dies.
The supervisor reaps every zombie, its own children's and orphans' alike, and registers as a
child subreaper when it is not PID 1 so orphans come to it rather than to the host's init.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime import cgroups
from supervisor_pd.runtime.spec import ProcessSpec
from supervisor_pd.settings import without_secrets

HERE = Path(__file__).resolve().parent
TRAMPOLINE = HERE / "trampoline.py"
GUARDIAN = HERE / "guardian.py"
PR_SET_CHILD_SUBREAPER = 36
TAG = "SUPERVISOR_PD_PROCESS"


def become_subreaper() -> bool:
    """As PID 1 we reap everything anyway; otherwise ask the kernel to hand us orphans."""
    if os.getpid() == 1:
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def raise_file_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; returns (before, after). Children get `before` back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


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


def spawn(
    spec: ProcessSpec,
    cpus: tuple[int, ...] | None,
    tag: str = "",
    file_limit: int | None = None,
    cgroup: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `spec` in a process group of its own via the trampoline; stdout and stderr are pipes.

    A group, not a session: MindIE's Server daemon calls setpgrp() first thing and exits (-1) if
    it fails (MindIE-LLM src/server/daemon/llm_daemon.cpp main), and it fails with EPERM in a
    session leader."""
    spec.cwd.mkdir(parents=True, exist_ok=True, mode=0o750)
    argv = [
        sys.executable,
        "-I",
        "-S",
        str(TRAMPOLINE),
        str(os.getpid()),
        str(int(signal.SIGKILL)),
        format_cpulist(cpus) if cpus else "-",
        str(file_limit) if file_limit is not None else "-",
        str(cgroup) if cgroup is not None else "-",
        "--",
        *spec.argv,
    ]
    env = dict(spec.env)
    if tag:
        env[TAG] = tag
    return subprocess.Popen(
        argv,
        cwd=spec.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
        close_fds=True,
    )


def ports_in_use(ports: tuple[int, ...]) -> tuple[int, ...]:
    """What MindIE's Server checks before it listens (MindIE-LLM http_server.cpp IsPortUsed): a
    bind on 0.0.0.0 without SO_REUSEADDR, so a port whose last connection lingers in TIME_WAIT or
    FIN-WAIT-2 counts as in use."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("0.0.0.0", port))  # the same bind MindIE makes
            except OSError:
                busy.append(port)
    return tuple(busy)


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


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def process_table(proc: Path = Path("/proc")) -> dict[int, Proc]:
    """Every process now, from one pass over /proc/<pid>/stat."""
    table = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        table[pid] = Proc(pid, int(fields[1]), int(fields[2]), fields[0])
    return table


def tagged(value: str, prefix: bool = False, proc: Path = Path("/proc")) -> set[int]:
    """Processes whose environment holds TAG=value (or a value starting with it, with `prefix`)."""
    needle = f"\0{TAG}={value}".encode() + (b"" if prefix else b"\0")
    found = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + environ + b"\0":
            found.add(int(entry.name))
    return found


def leftovers(pgid: int, tag: str, table: dict[int, Proc], with_tagged: bool) -> set[int]:
    """Every live process of a child's run: its group, the descendants of the group's members,
    and (with_tagged) every process carrying its tag, wherever it went."""
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found = {pid for pid, info in table.items() if info.pgid == pgid}
    if with_tagged and tag:
        found |= tagged(tag) & table.keys()
    todo = list(found)
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    found.discard(os.getpid())
    return {pid for pid in found if table[pid].alive}


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a pid from a reused one)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])


class PidFile:
    """The groups we started and our tag, so that a restarted supervisor can clean up after a dead one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, instance: str, children: dict[str, tuple[int, int | None]], cgroup: Path | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        groups = {name: {"pid": pid, "start": start} for name, (pid, start) in children.items()}
        record = {"instance": instance, "groups": groups, "cgroup": str(cgroup) if cgroup else None}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        temporary.replace(self.path)

    def sweep(self) -> list[str]:
        """Kill what a previous supervisor left running; returns what was found."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(data, dict):
            return []
        killed, pgids = [], set()
        groups = data.get("groups", {})
        for name, entry in (groups if isinstance(groups, dict) else {}).items():
            pid, start = entry.get("pid"), entry.get("start")
            if isinstance(pid, int) and start is not None and start_time(pid) == start:
                signal_group(pid, signal.SIGKILL)
                killed.append(name)
                pgids.add(pid)
        instance = data.get("instance")
        if isinstance(instance, str) and instance:
            table = process_table()
            strays = {
                pid
                for pid in tagged(f"{instance}/", prefix=True)
                if pid in table and table[pid].alive and table[pid].pgid not in pgids
            }
            for pid in strays:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if strays:
                killed.append(f"{len(strays)} process(es) that had left their group")
        cgroup = data.get("cgroup")
        if isinstance(cgroup, str) and cgroup:
            count = cgroups.sweep(Path(cgroup))
            if count:
                killed.append(f"{count} process(es) left in its cgroups")
        return killed


class Guardian:
    """The watchdog that kills our children's groups, and every process carrying our tag, if this
    process dies (runtime/guardian.py). Its own exit is watched like a child's."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def process_for(self, pid: int) -> subprocess.Popen[bytes] | None:
        return self._process if self._process is not None and self._process.pid == pid else None

    def start(self, instance: str = "") -> int:
        self.close()
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(GUARDIAN)],
            env=without_secrets(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        if instance:
            self._send(f"T{instance}/")
        return self._process.pid

    def _send(self, line: str) -> None:
        if self._process is None or self._process.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ValueError, OSError):
            self._process.stdin.write(line.encode() + b"\n")
            self._process.stdin.flush()

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}")

    def cgroups(self, base: Path) -> None:
        self._send(f"C{base}")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def close(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
