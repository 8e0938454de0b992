"""Running `supervisor-pd run` against the simulator as a user would, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.helpers import base_env
from tests.simstack import FAST_KNOBS, Ports, free_base, http, make_conf, wait_until

FAST_SUPERVISOR = {
    "SUPERVISOR_PD_HEALTH_INTERVAL": "0.2",
    "SUPERVISOR_PD_HEALTH_TIMEOUT": "0.5",
    "SUPERVISOR_PD_LIVENESS_FAILURES": "3",
    "SUPERVISOR_PD_RESTART_BACKOFF": "0.2",
    "SUPERVISOR_PD_RESTART_BACKOFF_MAX": "1",
    "SUPERVISOR_PD_GRACE_SECONDS": "15",
}


class SupervisorRun:
    def __init__(
        self,
        tmp_path: Path,
        profile: str = "800i-a2",
        env: dict[str, str] | None = None,
        change: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    ) -> None:
        self.tmp = tmp_path
        self.profile = profile
        self.ports = Ports(free_base())
        self.conf = make_conf(tmp_path / "conf", self.ports, change)
        self.state = tmp_path / "state"
        self.out = self.state / "conf"
        self.log_path = tmp_path / "supervisor.log"
        self.env = base_env(tmp_path)
        self.env.update(FAST_KNOBS)
        self.env.update(FAST_SUPERVISOR)
        self.env.update(
            SUPERVISOR_PD_PORT_BASE=str(self.ports.servers),
            SUPERVISOR_PD_API_PORT=str(self.ports.api),
            SUPERVISOR_PD_API_HOST="127.0.0.1",
        )
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, stdout: Any = None, file_limit: int | None = None) -> subprocess.Popen[bytes]:
        """`supervisor-pd run` in its own session; `file_limit`: its RLIMIT_NOFILE, soft and hard."""
        argv = [sys.executable, "-m", "supervisor_pd", "run", "--simulate", self.profile, "--conf-dir", str(self.conf)]
        if file_limit is not None:
            argv = ["prlimit", f"--nofile={file_limit}:{file_limit}", "--", *argv]
        handle = self.log_path.open("ab") if stdout is None else None
        try:
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=handle or stdout, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if handle is not None:
                handle.close()
        return self.process

    # --- observing ------------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def supervisor_lines(self) -> list[str]:
        """The supervisor's own messages, without the `warning: `/`error: ` a text line puts before them."""
        messages = [
            line[len("supervisor | ") :] for line in self.log().splitlines() if line.startswith("supervisor | ")
        ]
        return [re.sub(r"^(warning|error): ", "", message) for message in messages]

    def wait_log(self, pattern: str, timeout: float = 30.0, count: int = 1) -> None:
        regex = re.compile(pattern)
        wait_until(lambda: len(regex.findall(self.log())) >= count, timeout, what=f"log line /{pattern}/ x{count}")

    def wait_ready(self, timeout: float = 40.0, count: int = 1) -> None:
        self.wait_log(r"service: \w+ -> ready", timeout, count)

    def status(self) -> dict[str, Any]:
        """The supervisor's /v1/status (an empty dict when it does not answer)."""
        code, body = self.api("GET", "/v1/status", timeout=5)
        return json.loads(body) if code == 200 else {}

    def process_status(self, name: str) -> dict[str, Any]:
        return next((p for p in self.status().get("processes", []) if p["name"] == name), {})

    def server_config(self, index: int) -> dict[str, Any]:
        return json.loads((self.out / f"config{index}.json").read_text())["ServerConfig"]

    def mgmt(self, index: int, path: str) -> tuple[int, bytes]:
        return http("GET", f"http://127.0.0.1:{self.server_config(index)['managementPort']}{path}", timeout=2)

    def pid_of(self, name: str) -> int:
        """The current pid of a child, from the latest 'name: ... -> starting: pid N' line."""
        pids = re.findall(rf"{re.escape(name)}: \w+ -> starting: pid (\d+)", self.log())
        assert pids, f"{name} never started"
        return int(pids[-1])

    def predict(self, body: dict[str, Any], timeout: float = 20.0) -> tuple[int, bytes]:
        return http(
            "POST",
            f"http://127.0.0.1:{self.ports.predict}/v1/chat/completions",
            body,
            timeout=timeout,
            headers={"Content-Type": "application/json"},
        )

    def api(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 20.0
    ) -> tuple[int, bytes]:
        """A request to supervisor_pd's own HTTP port."""
        return http(method, f"http://127.0.0.1:{self.ports.api}{path}", body, timeout=timeout, headers=headers)

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """`supervisor-pd ARGS` with this run's environment (so it finds the control socket)."""
        return subprocess.run(
            [sys.executable, "-m", "supervisor_pd", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # --- stopping -------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def cleanup(self) -> None:
        """Whatever a test left: the supervisor, then anything started from this test's folder that
        its guardian did not clean up within a few seconds (it gets the chance: it removes cgroups)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        deadline = time.monotonic() + 5
        while tree_pids(str(self.tmp)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in tree_pids(str(self.tmp)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # The engine refuses a move its tables do not allow and logs it: never in any test.
        assert "internal error, refused" not in self.log(), "an illegal state transition was refused"


def tree_pids(marker: str) -> list[int]:
    """Processes whose command line or environment mentions `marker` (a test's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline or marker.encode() in environ:
            found.append(int(entry.name))
    return found


def descendants(root: int) -> set[int]:
    """Every process below `root` (by parent pid), plus every member of their process groups."""
    children: dict[int, list[int]] = {}
    groups: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid, pgid = int(entry.name), int(fields[1]), int(fields[2])
        children.setdefault(ppid, []).append(pid)
        groups.setdefault(pgid, []).append(pid)
    seen: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []) + groups.get(pid, []):
            if child not in seen and child != root:
                seen.add(child)
                todo.append(child)
    return seen


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def check_stop_order(lines: list[str], servers: int = 4) -> None:
    """The drain stops the Controller, then the Coordinator, then every Server.

    A Server that answered /stopService is still running (it only stops serving, as MindIE's
    does), so the drain's SIGTERM is what ends it: the last group names all of them, in order."""
    stops = [line.split(" (")[0].removeprefix("stopping ") for line in lines if line.startswith("stopping ")]
    everyone = ", ".join(f"server-{i}" for i in range(1, servers + 1))
    assert stops == ["controller", "coordinator", everyone], stops


@contextlib.contextmanager
def running(folder: Path, **kwargs: Any) -> Iterator[SupervisorRun]:
    """A started, ready stack for a module's tests; whatever is left is cleaned up after."""
    stack = SupervisorRun(folder, **kwargs)
    stack.start()
    try:
        stack.wait_ready(timeout=60)
        yield stack
    finally:
        stack.cleanup()
