"""`supervisor-pd run` against the simulated MindIE processes: real processes, sockets and signals."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from tests.simstack import wait_until
from tests.superstack import alive, check_stop_order, descendants

CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def test_bring_up_then_a_clean_stop(runs) -> None:  # type: ignore[no-untyped-def]
    # The start order and the drain's steps are the engine's (tests/unit/runtime/test_engine.py);
    # here the real processes come up, serve, and are all gone after a SIGTERM.
    run = runs()
    process = run.start()
    run.wait_ready()
    status = run.status()
    assert status["ready"] and {p["state"] for p in status["processes"]} == {"running"}
    assert all(p["ready"] for p in status["processes"] if p["component"] != "controller")
    assert run.predict(CHAT)[0] == 200
    tree = descendants(process.pid)
    assert run.stop() == 0
    check_stop_order(run.supervisor_lines())
    wait_until(lambda: not [pid for pid in tree if alive(pid)], what="every process gone")


def test_children_get_their_environment_and_working_folder(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"HCCL_EXEC_TIMEOUT": "120", "MINDIE_MS_COORDINATOR_PORT": "tcp://10.0.0.1:1026"})
    run.start()
    run.wait_ready()

    def environ(pid: int) -> dict[str, str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(item.decode().split("=", 1) for item in raw if b"=" in item)

    server = environ(run.pid_of("server-3"))
    assert server["ATB_SHARE_MEMORY_NAME_SUFFIX"] == "3"
    assert server["MIES_SERVICE_MONITOR_MODE"] == "1"
    assert server["MIES_CONTAINER_IP"] == server["MIES_CONTAINER_MANAGEMENT_IP"] == "127.0.0.1"
    assert server["HCCL_EXEC_TIMEOUT"] == "120"  # the user's value wins over the default
    assert server["HCCL_RDMA_TIMEOUT"] == "18"
    assert "ATB_SHARE_MEMORY_NAME_SUFFIX" not in environ(run.pid_of("coordinator"))
    controller_pid = run.pid_of("controller")
    controller = environ(controller_pid)
    assert controller["GLOBAL_RANK_TABLE_FILE_PATH"] == str(run.out / "global_ranktable.json")
    assert "MINDIE_MS_COORDINATOR_PORT" not in controller
    assert Path(f"/proc/{controller_pid}/cwd").resolve() == (run.state / "controller").resolve()
    assert os.getpgid(controller_pid) == controller_pid != os.getsid(controller_pid)  # a group, not a session
    # Every child and whatever it starts carries a tag that finds it even outside its group.
    assert controller["SUPERVISOR_PD_PROCESS"].endswith("/controller")
    assert server["SUPERVISOR_PD_PROCESS"].split("/")[0] == controller["SUPERVISOR_PD_PROCESS"].split("/")[0]


def test_a_killed_server_comes_back_with_the_same_ports_and_devices(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    run.start()
    run.wait_ready()
    before = run.server_config(3)
    pid = run.pid_of("server-3")
    group = [p for p in descendants(run.process.pid) if os.getpgid(p) == pid]
    assert len(group) == 2  # the daemon and its worker
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: run.process_status("server-3").get("pid") not in (None, pid), 30, what="server-3 again")
    assert run.process_status("server-3")["last_exit"] == "killed by SIGKILL"
    assert not [p for p in group if alive(p)]  # the old group was gone before the new start
    run.wait_ready(count=2)
    assert run.server_config(3) == before
    status = json.loads(run.mgmt(3, "/v1/status")[1])
    assert status["service"] == {"roleStatus": "RoleReady", "currentRole": "decode"}
    # Nothing else was restarted: the Controller re-admitted the Server.
    assert run.log().count("controller: pending -> starting") == 1
    assert run.predict(CHAT)[0] == 200


def test_a_hung_server_fails_liveness_and_is_restarted(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    run.start()
    run.wait_ready()
    pid = run.pid_of("server-2")
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: run.process_status("server-2").get("state") == "unhealthy", 10, what="server-2 unhealthy")
    wait_until(lambda: run.process_status("server-2").get("pid") not in (None, pid), 30, what="server-2 restarted")
    wait_until(lambda: not alive(pid), what="the stopped Server to be gone")
    run.wait_ready(count=2)


def test_a_server_that_always_fails_exhausts_the_budget(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_SIM_FAULTS": "server-4:exit=7", "SUPERVISOR_PD_RESTART_BUDGET": "3"})
    process = run.start()
    assert process.wait(60) == 3
    lines = run.supervisor_lines()
    delays = [
        float(line.split("restart in ")[1].split(" s")[0])
        for line in lines
        if line.startswith("server-4:") and "restart in" in line
    ]
    assert len(delays) == 3
    assert delays[2] > delays[0]  # exponential backoff
    assert any(line.startswith("server-4: ") and line.endswith("(failure 3 of 3 allowed in a row)") for line in lines)
    assert any(line.startswith("server-4: ") and "-> failed" in line for line in lines)
    assert any(line.startswith("giving up: server-4 failed too often") for line in lines)
    assert "exit code 3 (BUDGET_EXHAUSTED)" in run.log()


def test_sigterm_under_load_finishes_inside_the_grace_period(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_SIM_TPOT_MS": "20"})
    process = run.start()
    run.wait_ready()
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def ask() -> None:
        reply = run.predict(CHAT | {"max_tokens": 50}, timeout=30)
        with lock:
            results.append(reply)

    workers = [threading.Thread(target=ask) for _ in range(16)]
    for worker in workers:
        worker.start()
    wait_until(
        lambda: (
            sum(
                json.loads(run.mgmt(i, "/v1/status")[1] or b"{}").get("resource", {}).get("runningRequestNum", 0)
                for i in (3, 4)
            )
            > 0
        ),
        what="requests in flight",
    )
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert time.monotonic() - began < 15  # SUPERVISOR_PD_GRACE_SECONDS
    for worker in workers:
        worker.join(30)
    # The drain waited for the requests in flight before asking the Servers to stop.
    assert len(results) == 16
    assert all(code == 200 for code, _ in results), [(c, b[:200]) for c, b in results]
    lines = run.supervisor_lines()
    waited = next(i for i, line in enumerate(lines) if line.startswith("waiting for") and "in flight" in line)
    asked = lines.index("asking 4 process(es) to stop (/stopService)")
    stopping = next(i for i, line in enumerate(lines) if line.startswith("stopping controller (SIGTERM"))
    assert waited < asked < stopping


def test_sigkill_of_the_supervisor_leaves_no_process(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    process = run.start()
    run.wait_ready()
    tree = descendants(process.pid)
    assert len(tree) >= 11  # 4 Servers + 4 workers, Coordinator, Controller, guardian
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    wait_until(lambda: not [pid for pid in tree if alive(pid)], what="every process of the tree to be gone")


def test_a_restarted_supervisor_cleans_up_and_starts_on_the_same_ports(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    process = run.start()
    run.wait_ready()
    ports = run.server_config(1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    run.start()
    run.wait_ready(count=2)
    assert run.server_config(1) == ports
    assert run.stop() == 0


def test_an_orphaned_grandchild_is_reaped(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_SIM_FAULTS": "server-1:orphan=1@once;server-1:crash_after=0.5@once"})
    run.start()
    run.wait_log(r"server-1: \w+ -> backoff: exited \(killed by SIGKILL\)")
    # The grandchild was killed with its group; its exit status came to us as subreaper.
    run.wait_log(r"reaped orphan pid \d+")
    run.wait_ready()
    zombies = [pid for pid in descendants(run.process.pid) if not alive(pid) and Path(f"/proc/{pid}").exists()]
    assert zombies == []


def test_a_blocked_stdout_does_not_stop_the_loop(runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    read_end, write_end = os.pipe()
    try:
        process = run.start(stdout=write_end)
        os.close(write_end)
        # Nobody reads the pipe: it fills up within the first lines.
        servers = {}
        wait_until(
            lambda: len(servers.update(_server_pids(process.pid)) or servers) == 4, timeout=40, what="four Servers"
        )
        victim = servers["config2.json"]
        wait_until(lambda: run.mgmt(2, "/v1/status")[0] == 200, what="server-2 up")
        os.killpg(victim, signal.SIGKILL)
        wait_until(
            lambda: _server_pids(process.pid).get("config2.json") not in (None, victim),
            timeout=20,
            what="server-2 restarted while stdout is blocked",
        )
        process.send_signal(signal.SIGTERM)
        os.set_blocking(read_end, False)
        drained = b""
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                drained += os.read(read_end, 1 << 20)
            except BlockingIOError:
                time.sleep(0.05)
        assert process.poll() == 0
        assert b"log lines dropped" in drained or b"server-2" in drained
    finally:
        os.close(read_end)


def _server_pids(root: int) -> dict[str, int]:
    found = {}
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in cmdline:
            if arg.endswith(b".json") and b"config" in arg and b"supervisor_pd.simulator.server" in b" ".join(cmdline):
                found[Path(arg.decode()).name] = pid
    return found


def test_coordinator_restart_is_refilled_by_the_controller(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    run.start()
    run.wait_ready()
    os.killpg(run.pid_of("coordinator"), signal.SIGKILL)
    run.wait_log(r"coordinator: \w+ -> backoff")
    run.wait_ready(count=2)
    assert run.log().count("controller: pending -> starting") == 1
    assert run.predict(CHAT)[0] == 200


def test_controller_restart_recovers_without_touching_the_servers(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    run.start()
    run.wait_ready()
    servers = [run.pid_of(f"server-{i}") for i in range(1, 5)]
    os.killpg(run.pid_of("controller"), signal.SIGKILL)
    run.wait_log(r"controller: backoff -> starting")
    run.wait_log(r"controller \| \[ms_controller\] recovered roles", count=1)
    assert [run.pid_of(f"server-{i}") for i in range(1, 5)] == servers
    assert run.predict(CHAT)[0] == 200


def test_controller_without_its_recovery_file_restarts_the_servers(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    run.start()
    run.wait_ready()
    servers = [run.pid_of(f"server-{i}") for i in range(1, 5)]
    (run.state / "controller" / "logs" / "controller_process_status.json").unlink()
    os.killpg(run.pid_of("controller"), signal.SIGKILL)
    run.wait_log("recovery file is missing while Servers hold roles")
    run.wait_ready(count=2)
    assert all(run.pid_of(f"server-{i}") != pid for i, pid in zip(range(1, 5), servers, strict=True))
    assert "recovered roles" not in run.log()
    assert run.predict(CHAT)[0] == 200


def test_a_server_lost_during_the_first_role_assignment_restarts_the_controller(runs) -> None:  # type: ignore[no-untyped-def]
    # server-4's NPU initialisation fails once: the Controller's all-or-nothing init marks the
    # whole group faulty, and only a Controller restart (with the Server back) recovers.
    run = runs(
        env={"SUPERVISOR_PD_SIM_FAULTS": "server-4:load_fail@once"},
        change=lambda f: f["ms_controller.json"].update(check_role_attempt_times=4),
    )
    run.start()
    run.wait_log("failed during the first role assignment")
    run.wait_ready(timeout=60)
    assert run.log().count("controller: pending -> starting") == 1
    assert "controller: running -> stopping: its group went faulty" in run.log()
    assert run.predict(CHAT)[0] == 200


def test_missing_binaries_are_reported_before_anything_starts(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_CONTROLLER_COMMAND": "no_such_controller --flag"})
    process = run.start()
    assert process.wait(30) == 2
    assert "SUPERVISOR_PD_CONTROLLER_COMMAND: `no_such_controller` (for controller) was not found on PATH" in run.log()
    assert "pending -> starting" not in run.log()


def test_json_log_lines(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_LOG_FORMAT": "json"})
    run.start()
    wait_until(lambda: "Daemon start success!" in run.log(), what="a child line")
    records = [json.loads(line) for line in run.log().splitlines() if line.startswith("{")]
    child = next(r for r in records if r["message"] == "Daemon start success!")
    assert child["process"].startswith("server-") and child["stream"] == "stdout"
    assert set(child) == {"time", "process", "stream", "message"}
    own = [r for r in records if r["process"] == "supervisor"]
    assert own and all(set(r) == {"time", "level", "process", "message"} for r in own)
    assert all(datetime.fromisoformat(r["time"]).utcoffset() == timedelta(0) for r in records)


def test_log_files_when_mindie_logs_to_file(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"MINDIE_LOG_TO_FILE": "1"})
    run.start()
    run.wait_ready()
    logs = run.state / "logs"
    wait_until(lambda: "Init finished" in (logs / "server-3.log").read_text(), what="server-3's log file")
    assert "Daemon start success!" in (logs / "server-3.log").read_text()
    assert "[ms_controller]" in (logs / "controller.log").read_text()
    assert oct((logs / "server-3.log").stat().st_mode & 0o777) == "0o640"
    assert not (logs / "supervisor.log").exists()


def test_a_controller_that_stops_refreshing_is_restarted(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(
        env={
            "SUPERVISOR_PD_SIM_FAULTS": "controller:stall_after=0.5@once",
            "SUPERVISOR_PD_CONTROLLER_STALL_SECONDS": "2",
        }
    )
    run.start()
    run.wait_ready()
    run.wait_log("scheduler stalled")
    # An empty Coordinator is refilled only by a working Controller.
    os.killpg(run.pid_of("coordinator"), signal.SIGKILL)
    run.wait_log(r"controller: running -> backoff: the Coordinator has not been ready for 2 s")
    run.wait_ready(count=2)
    assert run.predict(CHAT)[0] == 200


def test_processes_that_outlast_the_grace_period_are_killed(runs) -> None:  # type: ignore[no-untyped-def]
    # Real Servers linger 5 s after SIGTERM before they stop; a 2 s grace period cuts them short.
    run = runs(env={"SUPERVISOR_PD_SIM_TIME_SCALE": "1", "SUPERVISOR_PD_GRACE_SECONDS": "2"})
    process = run.start()
    # Every process up is enough (readiness, on MindIE's unscaled timers, would take 20 s more).
    wait_until(
        lambda: [p["state"] for p in run.status().get("processes", [])] == ["running"] * 6, 60, what="all running"
    )
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    assert time.monotonic() - began < 5
    # The Servers' own stop path (5 s) was cut short: SIGKILL at the end of their share.
    assert "still running at the end of its share of the grace period: SIGKILL" in run.log()
