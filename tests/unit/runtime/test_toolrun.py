"""Host tools run by real processes while something else reaps every child (as the loop does)."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from supervisor_pd.platform.tools import ToolError, ToolResult
from supervisor_pd.runtime import toolrun
from supervisor_pd.runtime.toolrun import ToolRunner
from tests.simstack import wait_until


def tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_output_and_exit_code(tmp_path: Path) -> None:
    tool(tmp_path, "npu-smi", 'echo "link status: UP"; echo oops >&2; exit 3')
    result = ToolRunner({"PATH": str(tmp_path)}).run(["npu-smi", "info"], 5)
    assert (result.returncode, result.stdout, result.stderr) == (3, "link status: UP\n", "oops\n")
    assert result.argv == ("npu-smi", "info")


def test_a_missing_tool_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="was not found on PATH"):
        ToolRunner({"PATH": str(tmp_path)}).run(["hccn_tool", "-i", "0", "-link", "-g"], 1)


def test_a_hung_tool_and_what_it_started_are_killed_at_the_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    tool(tmp_path, "npu-smi", f"sleep 60 & echo $! > {marker}; wait")
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"did not finish within 0.3 s"):
        ToolRunner({"PATH": f"{tmp_path}:/usr/bin:/bin"}).run(["npu-smi", "info"], 0.3)
    assert time.monotonic() - started < 5
    child = int(marker.read_text())
    wait_until(lambda: gone(child), 5, what=f"the tool's child {child} to be killed with it")


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_secret_token_is_not_handed_to_a_tool_and_the_tag_is(tmp_path: Path) -> None:
    tool(tmp_path, "npu-smi", 'echo "token=${SUPERVISOR_PD_API_TOKEN:-none} tag=$SUPERVISOR_PD_PROCESS"')
    env = {"PATH": str(tmp_path), "SUPERVISOR_PD_API_TOKEN": "s3cret"}
    result = ToolRunner(env, tag="abc123/npu-health").run(["npu-smi"], 5)
    assert result.stdout == "token=none tag=abc123/npu-health\n"


def test_stop_kills_a_tool_still_running(tmp_path: Path) -> None:
    tool(tmp_path, "npu-smi", "exec sleep 60")
    runner = ToolRunner({"PATH": f"{tmp_path}:/usr/bin:/bin"})
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(runner.run(["npu-smi", "info"], 60))
        except ToolError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: runner._running, 5, what="the tool to start")
    started = time.monotonic()
    runner.stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    result = outcome[0]
    assert isinstance(result, ToolResult) and result.returncode == -signal.SIGKILL


def test_a_run_that_outlives_sigkill_is_not_started_again_until_it_is_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process stuck in the kernel cannot be made here; what the runner sees of one can: after
    # the kill, its pipes stay open (held by a process in a session of its own) and nothing has
    # collected its exit.
    monkeypatch.setattr(toolrun, "KILL_GRACE", 0.2)
    holder = tmp_path / "holder.pid"
    tool(tmp_path, "npu-smi", f"setsid sleep 30 & echo $! > {holder}; exec sleep 30")
    runner = ToolRunner({"PATH": f"{tmp_path}:/usr/bin:/bin"})
    stuck = None
    try:
        with pytest.raises(ToolError, match=r"did not finish within 0\.2 s"):
            runner.run(["npu-smi", "info"], 0.2)
        with pytest.raises(ToolError, match=r"not started: `npu-smi` pid \d+ of an earlier run is still there"):
            runner.run(["npu-smi", "info"], 0.2)
        (stuck,) = runner._stuck
        with runner.lock:
            assert runner.claim(stuck, -signal.SIGKILL)  # what the loop's reaper does when it ends
        assert not runner._stuck and not runner._running
        tool(tmp_path, "npu-smi", "echo fine")
        assert runner.run(["npu-smi", "info"], 5).stdout == "fine\n"
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(holder.read_text()), signal.SIGKILL)
        if stuck is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(stuck, 0)


# In a process of its own: waitpid(-1) here would reap the children of whatever else this test
# process runs.
RACE = r"""
import os, sys, threading
from supervisor_pd.runtime import processes
from supervisor_pd.runtime import toolrun
from supervisor_pd.runtime.toolrun import ToolRunner
from tests.simstack import wait_until

runner = ToolRunner({"PATH": sys.argv[1]})
stop = threading.Event()
orphans = []

def reaper():
    # What OsEffects.reap does, as often as it can: every exit it collects, under the lock.
    while not stop.is_set():
        with runner.lock:
            reaped = [(pid, code) for pid, code in processes.reap() if not runner.claim(pid, code)]
        orphans.extend(reaped)

thread = threading.Thread(target=reaper)
thread.start()
codes = [runner.run(["npu-smi"], 10).returncode for _ in range(200)]
stop.set()
thread.join()
print(sorted(set(codes)), len(orphans))
"""


def test_a_reaper_collecting_every_exit_neither_loses_a_tools_code_nor_reports_it(tmp_path: Path) -> None:
    tool(tmp_path, "npu-smi", "exit 7")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run(
        [sys.executable, "-c", RACE, str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    # Every run's code is its own (subprocess alone would read 0 where the reaper came first),
    # and no tool's exit reached the reaper's caller as an orphan's.
    assert done.stdout.split() == ["[7]", "0"]
