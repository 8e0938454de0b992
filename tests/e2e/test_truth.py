"""What `supervisor-pd run` says is true of the stack, and nothing it starts outlives it:
the findings that led to the state-machine engine, each as a test against real processes."""

from __future__ import annotations

import http.client as httpclient
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from supervisor_pd.runtime.drain import GROUP_GONE_LIMIT
from tests.helpers import REPO, run_cli, tree_digest
from tests.report import record
from tests.simstack import http, wait_until
from tests.superstack import SupervisorRun, alive, descendants

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


# --- /readyz tells the truth while processes die and come back ------------------------------


@dataclass
class Truth:
    """/readyz polled every 5 ms, and requests sent back to back straight to the Coordinator,
    each with the times it was sent and answered (time.monotonic())."""

    run: SupervisorRun
    polls: list[tuple[float, float, int]] = field(default_factory=list)
    requests: list[tuple[float, float, int, bytes]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, senders: int = 3) -> None:
        self.threads = [threading.Thread(target=self._poll)]
        self.threads += [threading.Thread(target=self._send) for _ in range(senders)]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(30)

    def _poll(self) -> None:
        connection = None
        while not self.stopped.is_set():
            began = time.monotonic()
            try:
                if connection is None:
                    connection = httpclient.HTTPConnection("127.0.0.1", self.run.ports.api, timeout=2)
                connection.request("GET", "/readyz")
                reply = connection.getresponse()
                reply.read()
                status = reply.status
            except (OSError, httpclient.HTTPException):
                status, connection = 0, None
            self.polls.append((began, time.monotonic(), status))
            time.sleep(max(0.0, began + 0.005 - time.monotonic()))

    def _send(self) -> None:
        url = f"http://127.0.0.1:{self.run.ports.predict}/v1/chat/completions"
        while not self.stopped.is_set():
            began = time.monotonic()
            code, body = http("POST", url, CHAT, timeout=5, headers={"Content-Type": "application/json"})
            self.requests.append((began, time.monotonic(), code, body))
            if code != 200:
                time.sleep(0.002)

    def refused(self) -> list[tuple[float, float, int, bytes]]:
        return [r for r in self.requests if r[2] == 503 and b"not ready" in r[3]]

    def refused_while_ready(self) -> list[tuple[float, str]]:
        """Refused requests sent when the latest answer from /readyz was 200."""
        bad = []
        for sent, _, _, _ in self.refused():
            said = [status for _, answered, status in self.polls if answered <= sent]
            if said and said[-1] == 200:
                bad.append((sent, "readyz said 200"))
        return bad

    def first(self, after: float, ready: bool) -> float | None:
        return next(
            (answered for _, answered, status in self.polls if answered >= after and (status == 200) == ready), None
        )


def _pgid(run: SupervisorRun, name: str) -> int:
    pid = run.process_status(name)["pid"]
    assert pid, f"{name} has no process"
    return int(pid)


@pytest.mark.parametrize("victims", [("server-1", "server-2"), ("coordinator",)], ids=["both-prefill", "coordinator"])
def test_readyz_never_says_ready_while_the_coordinator_refuses(runs, victims: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    # The production health interval (5 s): a readiness that lingers between checks would show.
    run = runs(env={"SUPERVISOR_PD_HEALTH_INTERVAL": "5", "SUPERVISOR_PD_HEALTH_TIMEOUT": "2"})
    run.start()
    run.wait_ready()
    truth = Truth(run)
    truth.start()
    try:
        wait_until(lambda: sum(1 for r in truth.requests if r[2] == 200) >= 20, what="requests served")
        groups = [_pgid(run, name) for name in victims]
        killed = time.monotonic()
        for pgid in groups:
            os.killpg(pgid, signal.SIGKILL)
        fell = wait_until(lambda: truth.first(killed, ready=False), 10, 0.005, "readyz to fail")
        back = wait_until(lambda: truth.first(fell, ready=True), 60, 0.01, "readyz to pass again")
        # Some more time ready, with requests going on.
        wait_until(lambda: sum(1 for r in truth.requests if r[0] > back and r[2] == 200) >= 20, what="requests")
    finally:
        truth.stop()
    assert truth.refused_while_ready() == []
    if victims != ("coordinator",):
        assert truth.refused(), "the Coordinator refused nothing: the test did not exercise the window"
    record(
        "readiness",
        {
            "victims": list(victims),
            "exit_to_503_ms": round((fell - killed) * 1000, 1),
            "kill_to_200_s": round(back - killed, 2),
            "refused": len(truth.refused()),
            "refused_while_ready": 0,
            "polls": len(truth.polls),
        },
    )


# --- one owner per state folder ---------------------------------------------------------------


def test_a_second_supervisor_on_the_same_folder_is_refused_and_harms_nothing(runs) -> None:  # type: ignore[no-untyped-def]
    first = runs()
    first.start()
    first.wait_ready()
    pid = first.process.pid
    conf_before = tree_digest(first.out)
    host = first.state / "sim" / "800i-a2" / "simhost.json"
    host_before = host.stat().st_mtime_ns
    sock = first.state / "api.sock"
    inode = sock.stat().st_ino
    children = {name: first.process_status(name)["pid"] for name in ("server-1", "coordinator", "controller")}

    second = runs()
    second.env["SUPERVISOR_PD_STATE_DIR"] = str(first.state)
    assert second.start().wait(60) == 2
    assert f"is in use by another supervisor-pd (pid {pid})" in second.log()
    assert "SUPERVISOR_PD_STATE_DIR" in second.log()

    common = ["--simulate", "800i-a2", "--conf-dir", str(first.conf)]
    for args in (["plan", *common], ["export", "supervisord", *common]):
        refused = first.cli(*args)
        assert refused.returncode == 2, refused.stderr
        assert f"(pid {pid})" in refused.stderr
    # Another state folder, but the live config folder as output.
    other = first.tmp / "other-state"
    elsewhere = subprocess.run(
        [sys.executable, "-m", "supervisor_pd", "plan", *common, "--output", str(first.out)],
        env={**first.env, "SUPERVISOR_PD_STATE_DIR": str(other)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert elsewhere.returncode == 2 and f"running supervisor-pd (pid {pid})" in elsewhere.stderr
    # A dry run may look, and a bad one fails, without touching anything. (In a network namespace
    # of its own: on this one the plan's ports are the running stack's, taken.)
    looked = run_cli(["plan", "--dry-run", *common], first.env, private=True)
    assert looked.returncode == 0, looked.stderr
    bad = run_cli(["plan", "--dry-run", *common, "--api-port", "80"], first.env, private=True)
    assert bad.returncode == 2

    assert tree_digest(first.out) == conf_before
    assert host.stat().st_mtime_ns == host_before
    assert sock.stat().st_ino == inode
    assert {name: first.process_status(name)["pid"] for name in children} == children
    assert first.api("GET", "/readyz")[0] == 200
    assert first.cli("status").returncode == 0  # the control socket is still this stack's
    assert first.stop() == 0
    assert not sock.exists()


# --- nothing outlives it ------------------------------------------------------------------------


def _sleepers(marker: str) -> list[int]:
    """The `sleep 300` workers started from a test's folder (found by their working folder: one
    started with `env -i` carries nothing else of the test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = str((entry / "cwd").resolve())
        except OSError:
            continue
        if cmdline == b"sleep\x00300\x00" and cwd.startswith(marker) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    "launch", ["setsid sleep 300", "env -i setsid sleep 300"], ids=["left-its-group", "also-cleared-its-environment"]
)
def test_workers_that_leave_their_process_group_die_with_their_server(runs, launch: str) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    # A Server launcher that starts a worker in a session of its own, as worker launchers do.
    wrapper = run.tmp / "server-with-worker"
    wrapper.write_text(f'#!/bin/sh\n({launch} &)\nexec mindie_llm_server "$@"\n')
    wrapper.chmod(0o755)
    run.env["SUPERVISOR_PD_SERVER_COMMAND"] = str(wrapper)
    run.start()
    run.wait_ready()
    if launch.startswith("env -i") and "each child runs in a cgroup of its own" not in run.log():
        pytest.skip("only a cgroup of its own finds a worker like this one, and none could be made here")
    marker = str(run.tmp)
    before = wait_until(lambda: len(_sleepers(marker)) == 4 and _sleepers(marker), what="four workers")
    old = run.process_status("server-2")["pid"]
    os.killpg(old, signal.SIGKILL)
    wait_until(lambda: run.process_status("server-2").get("pid") not in (None, old), 30, what="server-2 restarted")
    # Its worker was gone before the new run started: exactly one worker per Server now.
    after = set(wait_until(lambda: len(_sleepers(marker)) >= 4 and _sleepers(marker), what="the new worker"))
    assert len(after) == 4
    assert len(after & set(before)) == 3
    assert run.stop() == 0
    wait_until(lambda: not _sleepers(marker), 5, what="no worker left after the stop")


def test_a_killed_guardian_is_started_again_and_still_cleans_up(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    process = run.start()
    run.wait_ready()
    first = run.status()["guardian"]["pid"]
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: run.status()["guardian"]["pid"] not in (None, first), 10, what="a new guardian")
    code, body = run.api("GET", "/livez?verbose")
    assert code == 200
    assert b"[+]guardian ok: pid" in body and b"last: killed by SIGKILL" in body
    tree = descendants(process.pid)
    # The new guardian knows every group: a SIGKILL of the supervisor leaves nothing.
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    wait_until(lambda: not [pid for pid in tree if alive(pid)], what="every process of the tree to be gone")


def test_out_of_file_descriptors_a_crash_is_not_charged_and_the_server_comes_back(runs) -> None:  # type: ignore[no-untyped-def]
    def sixteen(files):  # type: ignore[no-untyped-def]
        files["config.json"]["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] = 1

    run = runs(profile="800i-a3", change=sixteen, env={"SUPERVISOR_PD_RESTART_BUDGET": "1"})
    process = run.start(file_limit=256)
    run.wait_ready(timeout=90)
    assert len([p for p in run.status()["processes"] if p["component"] == "server"]) == 16
    victim = run.process_status("server-7")["pid"]
    fds = Path(f"/proc/{process.pid}/fd")
    # Idle connections no longer use up the descriptors (the port keeps a budget, api/
    # connections.py): the supervisor's soft limit is lowered below the lowest free descriptor
    # instead, until the respawn has hit EMFILE.
    used = len(list(fds.iterdir()))
    subprocess.run(["prlimit", f"--pid={process.pid}", "--nofile=16:256"], check=True)
    try:
        os.killpg(victim, signal.SIGKILL)
        run.wait_log(r"server-7: running -> backoff: exited \(killed by SIGKILL\)")
        # The clear of the run cannot list processes (once a traceback that ended the stack)...
        run.wait_log(r"server-7: cannot list processes to clear its run \(Too many open files\)")
        # ...and after it gives up looking, the respawn meets EMFILE and is retried, not charged.
        run.wait_log(r"out of file descriptors \(EMFILE\)", timeout=GROUP_GONE_LIMIT + 20)
        assert process.poll() is None
    finally:
        subprocess.run(["prlimit", f"--pid={process.pid}", "--nofile=256:256"], check=True)
    wait_until(lambda: run.process_status("server-7").get("state") == "running", 60, what="server-7 back")
    assert process.poll() is None  # a budget of 1: charging the supervisor's EMFILE would have ended it
    assert run.process_status("server-7")["restarts"] == 1
    record("fd-limit", {"fds_in_use_when_lowered": used})
    assert run.stop() == 0


# --- stopping ------------------------------------------------------------------------------------


def test_a_process_deaf_to_sigterm_does_not_rob_the_next_of_its_share(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_GRACE_SECONDS": "6"})
    # The Controller's launcher ignores SIGTERM and outlives the Controller.
    deaf = run.tmp / "deaf-controller"
    deaf.write_text("#!/bin/sh\ntrap '' TERM\nmindie_motor_controller\nexec sleep 300\n")
    deaf.chmod(0o755)
    run.env["SUPERVISOR_PD_CONTROLLER_COMMAND"] = str(deaf)
    process = run.start()
    run.wait_ready()
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    took = time.monotonic() - began
    # The supervisor's record of the stop (its port is closed by now).
    ended = {line.split(":")[0]: line for line in run.supervisor_lines() if "-> stopped:" in line}
    assert ended["controller"].endswith("killed by SIGKILL")
    # The Coordinator had its own share after the Controller's, and stopped by itself in it.
    assert ended["coordinator"] == "coordinator: stopping -> stopped: exit code 0"
    lines = run.supervisor_lines()
    killed = next(
        i for i, line in enumerate(lines) if line.startswith("controller still running at the end of its share")
    )
    termed = next(i for i, line in enumerate(lines) if line.startswith("stopping coordinator (SIGTERM"))
    assert killed < termed
    assert took < 6 + 2
    assert not _sleepers(str(run.tmp))


def test_sighup_drains_and_stops_cleanly(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    process = run.start()
    run.wait_ready()
    sock = run.state / "api.sock"
    tree = descendants(process.pid)
    process.send_signal(signal.SIGHUP)
    assert process.wait(30) == 0
    assert not sock.exists()
    wait_until(lambda: not [pid for pid in tree if alive(pid)], what="every process gone")
    assert "service: ready -> draining: SIGHUP received" in run.log()


def test_sighup_can_be_ignored(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_SIGHUP": "ignore"})
    process = run.start()
    run.wait_ready()
    process.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP ignored" in run.log(), what="the signal noted")
    assert process.poll() is None and run.api("GET", "/readyz")[0] == 200
    assert run.stop() == 0


@pytest.mark.parametrize("args", [["settings"], ["settings", "--markdown"], ["--help"]])
def test_a_closed_pipe_ends_a_command_quietly(tmp_path: Path, args: list[str]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as `| head -1` can be
    try:
        done = subprocess.run(
            [sys.executable, "-m", "supervisor_pd", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
            cwd=REPO,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write)
    assert done.stderr == b""
    assert done.returncode == 141


def test_the_control_socket_path_holding_a_file_is_refused_not_deleted(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    precious = run.tmp / "precious.txt"
    precious.write_text("keep me")
    run.env["SUPERVISOR_PD_API_SOCKET"] = str(precious)
    assert run.start().wait(60) == 2
    assert precious.read_text() == "keep me" and stat.S_ISREG(precious.stat().st_mode)
    assert "is not a socket" in run.log()


def test_a_container_given_npus_4_to_7_serves_on_logical_ids_0_to_3(runs) -> None:  # type: ignore[no-untyped-def]
    # The simulated Server loads its model on device_logical_id, counted over the NPUs the
    # container sees (MindIE-LLM dmi_role.cpp): a plan that wrote the physical ids 4-7 there
    # would fail to load here as on hardware.
    run = runs(profile="800i-a2-4npu")
    run.start()
    run.wait_ready(timeout=60)
    servers = [p for p in run.status()["processes"] if p["component"] == "server"]
    assert sorted(d for p in servers for d in p["devices"]) == [4, 5, 6, 7]
    assert sorted(d for p in servers for d in p["logical_devices"]) == [0, 1, 2, 3]
    body = {"model": "llama3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert run.api("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})[0] == 200
    assert run.stop() == 0
