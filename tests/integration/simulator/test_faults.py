"""The simulator's injected faults behave as documented."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.simstack import Stack, http, wait_until


def test_exit_at_start(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-2:exit=3"})
    assert stack.start_server(2).wait(10) == 3
    stack.start_server(1)
    stack.wait_server_up(1)  # the fault names one Server only


def test_once_faults_hit_the_first_start_only(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-1:exit=4@once"})
    assert stack.start_server(1).wait(10) == 4
    stack.start_server(1)
    stack.wait_server_up(1)


def test_crash_after_kills_the_whole_group(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-1:crash_after=0.3"})
    process = stack.start_server(1)
    assert process.wait(10) == -signal.SIGKILL
    wait_until(
        lambda: subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).returncode == 1,
        what="the worker to go with the daemon",
    )


def test_hang_after_stops_answering(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-1:hang_after=0.3"})
    process = stack.start_server(1)
    stack.wait_server_up(1)
    stat = Path(f"/proc/{process.pid}/stat")
    wait_until(lambda: stat.read_text().split(") ")[1].startswith("T"), what="a stopped process")
    url = f"http://127.0.0.1:{stack.server_ports(1)['management']}/v1/status"
    assert http("GET", url, timeout=1)[0] == 0  # no answer within the client's timeout
    process.send_signal(signal.SIGCONT)


def test_slow_health(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-1:slow_health=0.5"})
    stack.start_server(1)
    stack.wait_server_up(1)
    began = time.monotonic()
    assert stack.mgmt(1, "/v1/status")[0] == 200
    assert time.monotonic() - began >= 0.45


def test_never_ready(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-*:never_ready"})
    stack.start_all()
    wait_until(
        lambda: all(stack.server_status(i)["service"]["roleStatus"] == "RoleSwitching" for i in range(1, 5)),
        what="role requests",
    )
    assert stack.mgmt(1, "/v2/health/ready")[0] == 500
    assert stack.status("/v1/readiness")[0] == 503


def test_orphan_leaves_a_grandchild_in_the_group(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-1:orphan=30"})
    process = stack.start_server(1)
    stack.wait_server_up(1)
    group = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(group) == 3  # daemon, worker, grandchild
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1  # the grandchild's parent is gone: it is nobody's child here
