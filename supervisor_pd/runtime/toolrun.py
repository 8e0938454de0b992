"""Host tools (npu-smi, hccn_tool) run while the supervision loop is reaping every child.

`platform.tools.run_tool` is right before the loop starts (discovery), not after: the loop
collects every exit status with `waitpid(-1)` (it is a subreaper, maybe PID 1), so it can reap a
tool before `subprocess` does. The tool's exit code is then lost (subprocess reads ECHILD as 0)
and the engine hears of an "orphan" each time. `ToolRunner` runs the same argv with the same
environment rule and timeout, and registers each tool's pid, under a lock the reaper also
holds, before the tool can be reaped: an exit the reaper collects is handed to its runner
(`claim`), never to the engine.

Nothing a tool run starts outlives the supervisor: each run carries the supervisor's process tag
(the guardian and a successor kill what carries it), and `stop()` kills what still runs at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping

from supervisor_pd.platform.tools import ToolError, ToolResult, which
from supervisor_pd.runtime.processes import TAG
from supervisor_pd.settings import without_secrets

# After a timeout the tool's group is killed; this long is left for its pipes to close.
KILL_GRACE = 1.0


class ToolRunner:
    def __init__(self, environ: Mapping[str, str], tag: str = "") -> None:
        self.environ = dict(environ)
        self.env = without_secrets(environ)
        if tag:
            self.env[TAG] = tag
        self.lock = threading.Lock()
        # pid -> the code the reaper collected for it (None: not collected by the reaper).
        self._running: dict[int, int | None] = {}
        # Runs that outlived SIGKILL (a tool stuck in the kernel, D state), by pid: their threads
        # gave up; the reaper collects them whenever they end. Until then that tool is not run
        # again, so stuck processes never pile up one per collection.
        self._stuck: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}

    def claim(self, pid: int, code: int) -> bool:
        """Called by the reaper, holding `lock`: whether `pid` is one of our tools (its code is kept)."""
        if pid not in self._running:
            return False
        stuck = self._stuck.pop(pid, None)
        if stuck is None:
            self._running[pid] = code
        else:  # no thread waits for it any more
            del self._running[pid]
            stuck[1].returncode = code
        return True

    def stop(self) -> None:
        """Kill every tool still running (the supervisor is stopping), so its thread ends too."""
        with self.lock:
            running = [pid for pid, code in self._running.items() if code is None]
        for pid in running:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    def run(self, argv: list[str], timeout: float) -> ToolResult:
        """Run `argv` (found on the PATH of our environment) within `timeout` seconds, blocking; for a
        worker thread. Raises ToolError if it is missing, cannot start, times out or is stuck."""
        executable = which(argv[0], self.environ)
        command = " ".join(argv)
        if executable is None:
            raise ToolError(f"`{argv[0]}` was not found on PATH")
        try:
            with self.lock:
                stuck = [pid for pid, (tool, _) in self._stuck.items() if tool == argv[0]]
                if stuck:
                    raise ToolError(
                        f"`{command}` not started: `{argv[0]}` pid {stuck[0]} of an earlier run is still there "
                        "after SIGKILL (stuck in the kernel)"
                    )
                popen = subprocess.Popen(  # an argv list, from the parsers' own *_argv()
                    [executable, *argv[1:]],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=self.env,
                    # Its own group: a timeout kills whatever the tool started too.
                    process_group=0,
                )
                self._running[popen.pid] = None
        except OSError as exc:
            raise ToolError(f"`{command}` could not be started: {exc.strerror or exc}") from None
        finished = False
        try:
            try:
                stdout, stderr = popen.communicate(timeout=timeout)
                finished = True
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.communicate(timeout=KILL_GRACE)
                    finished = True
                raise ToolError(f"`{command}` did not finish within {timeout:g} s") from None
        finally:
            with self.lock:
                if finished or self._running.get(popen.pid) is not None:  # ended, or collected by the reaper
                    reaped = self._running.pop(popen.pid, None)
                else:  # still there after SIGKILL (or its pipes are held by what it left behind)
                    self._stuck[popen.pid] = (argv[0], popen)
        code = reaped if reaped is not None else popen.returncode
        return ToolResult(
            argv=tuple(argv),
            returncode=code if code is not None else -1,
            stdout=stdout.decode("utf-8", errors="replace"),
            stderr=stderr.decode("utf-8", errors="replace"),
        )
