"""The operator CLI that steers a running stack, run as a user runs it against one simulated
stack: status --watch, wait, restart --wait, stop/start, the rolling restart of the Servers,
logs -f as a stream the server pushes, and the shell completion scripts.

The tests share the module's stack and run in order; each leaves it ready for the next.
"""

from __future__ import annotations

import itertools
import json
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import pytest

from supervisor_pd import unixsock
from supervisor_pd.api.podgauges import NOT_READY_WAITING
from tests.superstack import SupervisorRun, running

CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
JSON = {"Content-Type": "application/json"}
SERVERS = ["server-1", "server-2", "server-3", "server-4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorRun]:
    # A lost decode link quarantines every instance in MindIE's Coordinator; the supervisor ends
    # that with a Coordinator restart after this long (10 s by default).
    env = {"SUPERVISOR_PD_COORDINATOR_QUARANTINE_SECONDS": "0.5"}
    with running(tmp_path_factory.mktemp("operator"), env=env) as stack:
        yield stack


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def pod_gauge(run: SupervisorRun, name: str) -> float:
    """One of the pod's gauges (supervisor_pd_pod_*), as /metrics serves it now."""
    code, data = run.api("GET", "/metrics")
    assert code == 200
    (line,) = [line for line in data.decode().splitlines() if line.startswith(f"supervisor_pd_pod_{name} ")]
    return float(line.split()[1])


def process(run: SupervisorRun, name: str) -> dict[str, Any]:
    found = run.process_status(name)
    assert found, f"no status for {name}"
    return found


# --- watching --------------------------------------------------------------------------------


def test_status_watch_prints_plain_tables_one_after_another_when_not_on_a_terminal(run: SupervisorRun) -> None:
    began = time.monotonic()
    result = run.cli("status", "--watch", "--count", "3", "--interval", "0.2")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 0.4  # two intervals between three tables
    out = result.stdout
    assert "\x1b" not in out  # no cursor movement when stdout is not a terminal
    assert len(re.findall(r"^every 0\.2s: ", out, re.M)) == 3
    assert len(re.findall(r"^phase: ready", out, re.M)) == 3
    assert len(re.findall(r"^server-1 +prefill +running", out, re.M)) == 3


def test_wait_for_ready_returns_at_once_on_a_ready_service(run: SupervisorRun) -> None:
    result = run.cli("wait", "--for", "ready", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout).startswith("ready: the service is ready")


def test_wait_that_times_out_says_so_with_its_own_exit_code(run: SupervisorRun) -> None:
    began = time.monotonic()
    result = run.cli("wait", "--for", "stopped", "--timeout", "0.5")
    assert result.returncode == 3
    assert time.monotonic() - began >= 0.5
    assert one_line(result.stderr).startswith("wait: timed out after 0.5 s waiting for stopped: the service is ready")
    bad = run.cli("wait", "--for", "gone")
    assert bad.returncode == 2 and "--for" in bad.stderr


# --- restart --wait, stop and start ----------------------------------------------------------


def test_restart_wait_returns_only_once_the_server_is_back_and_role_ready(run: SupervisorRun) -> None:
    before = process(run, "server-3")
    result = run.cli("restart", "server-3", "--wait")
    assert result.returncode == 0, result.stderr
    after = process(run, "server-3")  # asked the moment the command returned
    assert after["pid"] not in (None, before["pid"])
    assert after["serving"]["state"] == "role-ready" and after["ready"]
    assert after["restart_causes"].get("operator", 0) == before["restart_causes"].get("operator", 0) + 1
    assert f"back, pid {after['pid']}, role-ready" in result.stdout
    missing = run.cli("restart", "server-99", "--wait")
    assert missing.returncode == 2 and "no process named 'server-99'" in missing.stderr


def test_a_stopped_server_stays_stopped_and_the_service_not_ready_until_it_is_started(run: SupervisorRun) -> None:
    run.cli("wait", "--for", "ready", "--timeout", "30")
    before = process(run, "server-2")
    result = run.cli("stop", "server-2")
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout).startswith("server-2: stopped")
    stopped = process(run, "server-2")
    assert stopped["state"] == "stopped" and stopped["pid"] is None and not stopped["ready"]
    assert run.api("GET", "/readyz")[0] == 503
    # The pod's gauges say "go elsewhere" to an endpoint picker that has not dropped it yet.
    assert pod_gauge(run, "kv_cache_usage_ratio") == 1 and pod_gauge(run, "requests_waiting") == NOT_READY_WAITING
    # Not ready while it is stopped, for as long as one looks (a wait that times out: 1.5 s of
    # health rounds every 0.2 s), and nothing restarts it meanwhile.
    waited = run.cli("wait", "--for", "ready", "--timeout", "1.5")
    assert waited.returncode == 3
    assert "server-2 (stopped)" in one_line(waited.stderr)
    still = process(run, "server-2")
    assert still["state"] == "stopped" and still["pid"] is None
    assert still["restarts"] == before["restarts"]
    assert not re.search(r"server-2: stopped -> ", run.log())
    # Nothing else may be rolled while a Server is down, and a stopped process is not restarted.
    rolled = run.cli("restart", "--servers", "--rolling", "--role", "prefill")
    assert rolled.returncode == 1 and "not ready" in one_line(rolled.stderr)
    assert run.cli("restart", "server-2").returncode == 1
    again = run.cli("stop", "server-2")
    assert again.returncode == 1 and "already stopped" in again.stderr
    started = run.cli("start", "server-2")
    assert started.returncode == 0, started.stderr
    back = process(run, "server-2")
    assert back["pid"] not in (None, before["pid"]) and back["serving"]["state"] == "role-ready"
    assert run.cli("wait", "--for", "ready", "--timeout", "30").returncode == 0
    assert pod_gauge(run, "kv_cache_usage_ratio") < 1 and pod_gauge(run, "requests_waiting") == 0


# --- the rolling restart ---------------------------------------------------------------------


def test_a_roll_with_decode_servers_is_refused_and_says_why(run: SupervisorRun) -> None:
    result = run.cli("restart", "--servers", "--rolling")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "rolling restart refused: restarting a decode Server can take the whole service down" in line
    assert "--role prefill" in line and "--allow-outage" in line
    assert run.cli("restart", "--rolling").returncode == 2  # --servers and --rolling go together
    for query, words in (("role=flex", "role must be one of prefill, decode"), ("allow-outage=maybe", "allow-outage")):
        code, body = control(run, "POST", f"/v1/servers/rolling-restart?{query}")
        assert code == 400 and words in body["error"], body
    code, body = control(run, "GET", "/v1/servers/rolling-restart")
    assert code == 200 and body == {"state": "none"}  # nothing was rolled yet


def control(run: SupervisorRun, method: str, path: str) -> tuple[int, Any]:
    """A request on the control socket (no token there), as `curl --unix-socket` sends it."""
    with unixsock.connect(run.state / "api.sock", 5.0) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@dataclass
class Watch:
    """Status samples and a steady stream of chat requests, each with its moment."""

    run: SupervisorRun
    samples: list[tuple[float, dict[str, tuple[int | None, str, bool]]]] = field(default_factory=list)
    requests: list[tuple[float, float, int]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        while not self.done.is_set():
            data = self.run.status()
            if data:
                seen = {p["name"]: (p["pid"], p["state"], p["ready"]) for p in data["processes"]}
                self.samples.append((time.monotonic(), seen))
            self.done.wait(0.03)  # a sample every 30 ms until the roll is over

    def load(self) -> None:
        while not self.done.is_set():
            began = time.monotonic()
            code, _ = self.run.api("POST", "/v1/chat/completions", CHAT, headers=JSON, timeout=10)
            self.requests.append((began, time.monotonic(), code))

    def down_windows(self, name: str, pid: int) -> tuple[float, float]:
        """From the first sample where `name` left its first run to the first where it is back."""
        gone = next(t for t, seen in self.samples if seen[name][0] != pid or seen[name][1] != "running")
        back = next(t for t, seen in self.samples if t > gone and seen[name][0] not in (None, pid) and seen[name][2])
        return gone, back


def test_a_roll_restarts_every_server_one_at_a_time_and_the_service_keeps_answering(run: SupervisorRun) -> None:
    assert run.cli("wait", "--for", "ready", "--timeout", "30").returncode == 0
    pids = {name: process(run, name)["pid"] for name in SERVERS}
    mark = len(run.log())
    watch = Watch(run)
    threads = [threading.Thread(target=watch.sample, daemon=True), threading.Thread(target=watch.load, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        result = run.cli("restart", "--servers", "--rolling", "--allow-outage", "--wait", timeout=120)
    finally:
        watch.done.set()
        for thread in threads:
            thread.join(15)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("rolling restart done")
    after = {name: process(run, name)["pid"] for name in SERVERS}
    assert all(after[name] not in (None, pids[name]) for name in SERVERS), (pids, after)
    # The event log: each Server is told to stop only once the one before is back, prefill first.
    lines = [line[len("supervisor | ") :] for line in run.log()[mark:].splitlines() if line.startswith("supervisor | ")]
    steps = [line.split(":")[0] for line in lines if re.search(r"-> stopping: rolling restart \(\d of 4\)", line)]
    assert steps == SERVERS
    for earlier, later in itertools.pairwise(SERVERS):
        back = lines.index(next(line for line in lines if line.startswith(f"rolling restart: {earlier} is back")))
        stopping = lines.index(next(line for line in lines if re.match(rf"{later}: \w+ -> stopping: rolling", line)))
        assert back < stopping
    # Never two Servers down at once: the transitions in order, and the status samples.
    state = dict.fromkeys(SERVERS, "running")
    for line in lines:
        moved = re.match(r"(server-\d): \w+ -> (\w+):", line)
        if moved:
            state[moved.group(1)] = moved.group(2)
            assert sum(s != "running" for s in state.values()) <= 1, line
    assert watch.samples
    for _, seen in watch.samples:
        assert sum(seen[name][1] != "running" for name in SERVERS) <= 1, seen
    # While a prefill Server restarts the other one serves: requests keep completing.
    for name in ("server-1", "server-2"):
        gone, back = watch.down_windows(name, pids[name])
        served = [r for r in watch.requests if r[0] >= gone and r[1] <= back and r[2] == 200]
        assert served, f"no request completed while {name} was restarting ({back - gone:.2f} s)"
    assert run.cli("wait", "--for", "ready", "--timeout", "30").returncode == 0


# --- logs -f ---------------------------------------------------------------------------------


def follow(run: SupervisorRun, name: str) -> tuple[socket.socket, queue.Queue[tuple[float, dict[str, Any]]]]:
    """One streamed reply, read by a thread: each record with the moment it arrived."""
    sock = unixsock.connect(run.state / "api.sock", 5.0)
    sock.sendall(f"GET /v1/processes/{name}/logs?follow=1&tail=1 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    reader = sock.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += reader.readline()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"application/x-ndjson" in head.lower() and b"transfer-encoding: chunked" in head.lower()
    sock.settimeout(None)
    records: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()

    def read() -> None:
        with reader:
            while (size := int(reader.readline().strip() or b"0", 16)) > 0:
                chunk = reader.read(size)
                reader.read(2)
                for raw in chunk.splitlines():
                    records.put((time.monotonic(), json.loads(raw)))

    threading.Thread(target=read, daemon=True).start()
    return sock, records


def test_logs_follow_is_one_reply_that_the_server_pushes_each_line_into_as_it_is_written(run: SupervisorRun) -> None:
    sock, records = follow(run, "supervisor")
    try:
        _, first = records.get(timeout=10)
        assert "n" in first and "line" in first  # the tail: the last line so far
        # Three lines written at three moments, each by a request refused on the TCP port (the
        # first refusal of its kind is logged at once).
        triggers = [
            (lambda: run.api("POST", "/v1/drain"), 403, "POST /v1/drain"),
            (lambda: run.api("GET", "/v1/status", headers={"Host": "nope.example"}), 421, "nope.example"),
            (lambda: run.api("GET", "/v1/processes/server-1/logs"), 403, "/v1/processes/server-1/logs"),
        ]
        numbers = [first["n"]]
        for trigger, code, words in triggers:
            assert trigger()[0] == code
            written = time.monotonic()
            while True:
                arrived, record = records.get(timeout=10)
                if words in record.get("line", ""):
                    break
            assert arrived - written < 2.0, (
                f"{words!r} reached the stream {arrived - written:.2f} s after it was written"
            )
            numbers.append(record["n"])
            time.sleep(0.3)  # the next line at a later moment, on the same reply
        assert numbers == sorted(numbers) and len(set(numbers)) == 4
    finally:
        sock.close()
    # The command: `logs -f` prints each line as it comes, here one of a Controller's stop.
    cli = subprocess.Popen(
        [sys.executable, "-m", "supervisor_pd", "logs", "supervisor", "-n", "1", "-f"],
        env=run.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.stdout is not None
        printed = lines_of(cli.stdout)
        assert printed.get(timeout=10).strip()  # the last line so far
        assert run.cli("stop", "controller").returncode == 0
        while "controller: stopping -> stopped" not in printed.get(timeout=10):
            pass
        assert run.cli("start", "controller").returncode == 0
    finally:
        cli.terminate()
        cli.wait(10)


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """A child's output lines as they come, read by a thread (a test never blocks on a pipe)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def test_the_new_control_routes_need_the_token_on_tcp(run: SupervisorRun) -> None:
    """After the logs test: its first refusal of each kind must be the one logged."""
    for method, path in (
        ("POST", "/v1/processes/server-1/stop"),
        ("POST", "/v1/processes/server-1/start"),
        ("POST", "/v1/servers/rolling-restart"),
        ("GET", "/v1/servers/rolling-restart"),
        ("GET", "/v1/processes/server-1/logs?follow=1"),
    ):
        code, body = run.api(method, path)
        assert code == 403 and "SUPERVISOR_PD_API_TOKEN" in json.loads(body)["error"], (path, body)
    assert process(run, "server-1")["state"] == "running"


# --- completion ------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_completion_scripts_parse(run: SupervisorRun, shell: str) -> None:
    result = run.cli("completion", shell)
    assert result.returncode == 0, result.stderr
    script = result.stdout
    for command in ("status", "wait", "restart", "stop", "start", "logs", "completion"):
        assert command in script
    checker = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "tcsh": None}[shell]
    if checker is None or shutil.which(checker[0]) is None:
        assert script.strip()
        return
    parsed = subprocess.run([*checker], input=script, capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr
