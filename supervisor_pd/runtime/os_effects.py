"""The real `Effects`: processes, signals, HTTP probes and the guardian, on this machine.

Everything that takes time runs as a task of the loop's task group and reports back by posting
an event; nothing here decides anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import TaskGroup

from supervisor_pd.platform.tools import which
from supervisor_pd.runtime import processes
from supervisor_pd.runtime.cgroups import Cgroups
from supervisor_pd.runtime.drain import GROUP_GONE_LIMIT
from supervisor_pd.runtime.events import Answered, Event, Exited, GroupGone, HooksDone, NpuReport, Probe
from supervisor_pd.runtime.logs import LogSink
from supervisor_pd.runtime.npucollect import CONCURRENCY, ChipTarget, Collection, ToolFailure, collect
from supervisor_pd.runtime.probes import Prober, Result
from supervisor_pd.runtime.spec import HttpCheck, ProcessSpec
from supervisor_pd.runtime.toolrun import ToolRunner

DrainHook = Callable[[float], Awaitable[None]]
ProbeListener = Callable[[str, Probe, Result], None]
CLEAR_POLL = 0.01


class OsEffects:
    def __init__(
        self,
        post: Callable[[Event], None],
        sink: LogSink,
        pidfile: processes.PidFile,
        instance: str,
        apply_cpus: bool,
        file_limit: int | None = None,
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self.post = post
        self.sink = sink
        self.pidfile = pidfile
        self.instance = instance
        self.applies_cpus = apply_cpus
        self.file_limit = file_limit
        self.cgroups: Cgroups | None = None  # a cgroup per child, where we own ours (runtime/cgroups.py)
        self.hooks: list[DrainHook] = []
        self.on_probe: list[ProbeListener] = []
        self.guardian = processes.Guardian()
        self._guarded: set[int] = set()
        # Every child's Popen until its exit is reaped here: a Popen dropped while its process runs
        # goes on subprocess's list of processes to poll, and the next Popen() would reap it there,
        # out of our sight, so its exit would never be noticed.
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        self._tg: TaskGroup | None = None
        self._prober: Prober | None = None
        # Host tools see the environment discovery saw (a simulated host's tools first on PATH).
        self.tools = ToolRunner(os.environ if host_env is None else host_env, tag=self.tag("npu-health"))
        self._tool_slots: anyio.CapacityLimiter | None = None

    def bind(self, tg: TaskGroup, prober: Prober) -> None:
        self._tg, self._prober = tg, prober

    def _task(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        assert self._tg is not None, "effects used before the loop started"
        self._tg.start_soon(function, *args)

    # --- the clock and the log -------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def log(self, message: str, level: str = "info") -> None:
        self.sink.line("supervisor", level, message)

    def exists(self, path: Path) -> bool:
        return path.exists()

    # --- processes -----------------------------------------------------------------------

    def ports_in_use(self, ports: tuple[int, ...]) -> tuple[int, ...]:
        return processes.ports_in_use(ports)

    def spawn(self, spec: ProcessSpec, run: int) -> int:
        cpus = spec.cpus if self.applies_cpus else None
        cgroup = self.cgroups.folder(spec.name) if self.cgroups is not None else None
        popen = processes.spawn(spec, cpus, tag=self.tag(spec.name), file_limit=self.file_limit, cgroup=cgroup)
        self._popens[popen.pid] = popen
        self._task(self._watch_exit, popen.pid)
        for stream, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            if pipe is not None:
                self._task(self._pump, spec.name, stream, pipe)
        return popen.pid

    def tag(self, name: str) -> str:
        return f"{self.instance}/{name}"

    def signal(self, pgid: int, signum: int) -> None:
        processes.signal_group(pgid, signum)

    def kill_tree(self, name: str, run: int, pgid: int) -> None:
        self._task(self._clear, name, run, pgid)

    async def _clear(self, name: str, run: int, pgid: int) -> None:
        """SIGKILL until nothing of the run is left: the group, its descendants, its tagged strays.

        No event tells when a set of processes is gone; they are reaped as they die."""
        deadline = time.monotonic() + GROUP_GONE_LIMIT
        tag, with_tagged, warned = self.tag(name), True, False
        while time.monotonic() < deadline:
            try:
                table = processes.process_table()
            except OSError as exc:
                # Out of descriptors (our own): nothing can be listed this turn. Kill what can
                # be killed without a list and look again; a traceback here would end the stack.
                if not warned:
                    self.log(f"{name}: cannot list processes to clear its run ({exc.strerror}); trying again")
                    warned = True
                processes.signal_group(pgid, signal.SIGKILL)
                if self.cgroups is not None:
                    self.cgroups.kill(name)
                self.reap()
                await anyio.sleep(CLEAR_POLL)
                continue
            left = processes.leftovers(pgid, tag, table, with_tagged) - {self.guardian.pid}
            if self.cgroups is not None:
                left |= self.cgroups.members(name)
            if not left:
                if with_tagged:
                    break  # confirmed by a full scan of the tags
                with_tagged = True  # one more look, tags included, before saying it is gone
                continue
            processes.signal_group(pgid, signal.SIGKILL)
            if self.cgroups is not None:
                self.cgroups.kill(name)
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.reap()
            await anyio.sleep(CLEAR_POLL)
            with_tagged = False  # the tags are read again only to confirm
        self.post(GroupGone(name, run))

    def reap(self) -> None:
        """The one place exit statuses are collected: ours and orphans' alike. A host tool's goes to
        the thread that runs it (runtime/toolrun.py), under the lock its start is registered with."""
        with self.tools.lock:
            reaped = [(pid, code) for pid, code in processes.reap() if not self.tools.claim(pid, code)]
        for pid, code in reaped:
            popen = self._popens.pop(pid, None) or self.guardian.process_for(pid)
            if popen is not None:
                popen.returncode = code  # reaped: nothing left for subprocess to poll
            self.post(Exited(pid, code))

    async def _watch_exit(self, pid: int) -> None:
        """Notice an exit at once: a pidfd becomes readable when its process ends."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.reap()
            return
        except OSError:
            return  # out of descriptors: the supervisor's sweep (ORPHAN_REAP_INTERVAL) reaps it
        try:
            await anyio.wait_readable(fd)
        finally:
            os.close(fd)
        self.reap()

    async def _pump(self, name: str, stream: str, pipe: IO[bytes]) -> None:
        """Copy a child's output, line by line, to the log sink. Never blocks the loop."""
        fd = pipe.fileno()
        os.set_blocking(fd, False)
        buffer = b""
        try:
            while True:
                await anyio.wait_readable(fd)
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self.sink.line(name, stream, line.decode(errors="replace").rstrip("\r"))
                if len(buffer) > 65536:
                    self.sink.line(name, stream, buffer.decode(errors="replace"))
                    buffer = b""
            if buffer:
                self.sink.line(name, stream, buffer.decode(errors="replace"))
        finally:
            pipe.close()

    # --- the guardian and the record of groups -----------------------------------------------

    def start_guardian(self) -> int:
        pid = self.guardian.start(self.instance)
        if self.cgroups is not None:
            self.guardian.cgroups(self.cgroups.base)
        self._guarded = set()
        self._task(self._watch_exit, pid)
        return pid

    def track(self, groups: dict[str, int]) -> None:
        wanted = set(groups.values())
        for pgid in wanted - self._guarded:
            self.guardian.watch(pgid)
        for pgid in self._guarded - wanted:
            self.guardian.forget(pgid)
        self._guarded = wanted
        record = {name: (pgid, processes.start_time(pgid)) for name, pgid in groups.items()}
        try:
            self.pidfile.write(self.instance, record, self.cgroups.base if self.cgroups is not None else None)
        except OSError as exc:
            self.log(f"cannot record the process groups: {exc.strerror}")

    def close(self) -> None:
        self.tools.stop()
        if self.cgroups is not None:
            self.cgroups.close()
        self.guardian.close()

    # --- probes and hooks ----------------------------------------------------------------

    def probe(self, name: str, run: int, probe: Probe, checks: tuple[HttpCheck, ...], timeout: float) -> None:
        self._task(self._probe, name, run, probe, checks, timeout)

    async def _probe(self, name: str, run: int, probe: Probe, checks: tuple[HttpCheck, ...], limit: float) -> None:
        assert self._prober is not None
        sent = time.monotonic()
        result = Result(False, "no check")
        for check in checks:
            result = await self._prober.check(check, limit, retry=probe is not Probe.STOP)
            if not result.ok:
                break
        for listener in self.on_probe:
            listener(name, probe, result)
        self.post(Answered(name, run, probe, result, sent))

    def collect_npu(self, targets: tuple[ChipTarget, ...], timeout: float) -> None:
        self._task(self._collect_npu, targets, timeout)

    async def _collect_npu(self, targets: tuple[ChipTarget, ...], limit: float) -> None:
        if self._tool_slots is None:
            self._tool_slots = anyio.CapacityLimiter(CONCURRENCY)
        started = time.monotonic()
        try:
            hccn = which("hccn_tool", self.tools.environ) is not None
            found = await collect(targets, self.tools.run, limit, self._tool_slots, hccn_tool=hccn)
        except Exception as exc:  # a collector bug must not end the supervision loop with it
            found = Collection((), (ToolFailure("collector", "", f"the NPU health collector failed: {exc!r}"),), 0)
        self.post(NpuReport(started, time.monotonic(), found.chips, found.failures, found.runs))

    def run_hooks(self, deadline: float) -> None:
        self._task(self._hooks, deadline)

    async def _hooks(self, deadline: float) -> None:
        for hook in self.hooks:
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                await hook(deadline)
        self.post(HooksDone())
