"""Running the simulated MindIE processes the way a user would by hand: plan, then start each
binary from the simulated host's bin folder with the plan's files. Used by simulator tests."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor_pd.simulator.host import build_sim_host
from supervisor_pd.simulator.profiles import HostProfile
from tests.helpers import SAMPLE_CONF, base_env, run_cli

FAST_KNOBS = {
    "SUPERVISOR_PD_SIM_TIME_SCALE": "0.05",
    "SUPERVISOR_PD_SIM_STARTUP_SECONDS": "0.1",
    "SUPERVISOR_PD_SIM_MODEL_LOAD_SECONDS": "0",
    "SUPERVISOR_PD_SIM_LINK_SECONDS": "0.05",
    "SUPERVISOR_PD_SIM_TTFT_MS": "5",
    "SUPERVISOR_PD_SIM_TPOT_MS": "2",
    "MIES_SERVICE_MONITOR_MODE": "1",
    # A killed Server's ports stay unbindable without SO_REUSEADDR for up to a minute after it
    # (FIN-WAIT-2, TIME_WAIT): MindIE's Server refuses them and supervisor_pd waits. The tests
    # forgive that on both sides to restart at once; tests/e2e/test_port_wait.py does not.
    "SUPERVISOR_PD_SIM_PORT_CHECK": "reuseaddr",
    "SUPERVISOR_PD_PORT_WAIT_SECONDS": "0",
}


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def http(
    method: str, url: str, body: Any = None, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


# Test ports come from below the ephemeral range, so no connection's local port lands on them.
_PORTS_LOW, _PORTS_HIGH = 20000, 32000
_handed_out: list[int] = []  # where the blocks this process gave go on from (see free_base)


def _worker_slice() -> tuple[int, int]:
    """This pytest-xdist worker's share of the test port range: the workers of one run never draw
    the same port, so one cannot take a block that another has checked but not bound yet."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return _PORTS_LOW, _PORTS_HIGH
    index = int(worker[2:]) % count
    width = (_PORTS_HIGH - _PORTS_LOW) // count
    return _PORTS_LOW + index * width, _PORTS_LOW + (index + 1) * width


def free_base(size: int = 64) -> int:
    """A block of `size` ports that can all be bound now, after the blocks this process gave last.

    Blocks are handed out in turn through this worker's slice rather than at random: a stack
    started a moment ago may not have bound its ports yet, and must not be given them again.
    Ports another program holds are skipped by binding each one."""
    low, high = _worker_slice()
    span = high - low - size
    start = _handed_out[-1] - low if _handed_out else random.randrange(span)
    for step in range(span // size):
        base = low + (start + step * size) % span
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("0.0.0.0", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        _handed_out.append(base + size)
        return base
    raise RuntimeError(f"no free block of {size} ports in {low}-{high}")


@dataclass(frozen=True)
class Ports:
    base: int

    @property
    def predict(self) -> int:
        return self.base

    @property
    def manage(self) -> int:
        return self.base + 1

    @property
    def alarm(self) -> int:
        return self.base + 2

    @property
    def external(self) -> int:
        return self.base + 3

    @property
    def status(self) -> int:
        return self.base + 4

    @property
    def controller(self) -> int:
        return self.base + 5

    @property
    def node_manager(self) -> int:
        return self.base + 6

    @property
    def api(self) -> int:
        return self.base + 7

    @property
    def servers(self) -> int:
        return self.base + 10


def make_conf(folder: Path, ports: Ports, change: Callable[[dict[str, dict[str, Any]]], None] | None = None) -> Path:
    shutil.copytree(SAMPLE_CONF, folder)
    files = {
        name: json.loads((folder / name).read_text())
        for name in ("config.json", "ms_controller.json", "ms_coordinator.json")
    }
    files["ms_coordinator.json"]["http_config"].update(
        predict_port=str(ports.predict),
        manage_port=str(ports.manage),
        alarm_port=str(ports.alarm),
        external_port=str(ports.external),
        status_port=str(ports.status),
    )
    files["ms_controller.json"].update(node_manager_port=ports.node_manager)
    files["ms_controller.json"]["http_server"]["port"] = ports.controller
    if change is not None:
        change(files)
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data, indent=2))
    return folder


class Stack:
    """A plan and the simulated processes started from it."""

    def __init__(
        self,
        tmp_path: Path,
        profile: str | HostProfile = "800i-a2",
        knobs: dict[str, str] | None = None,
        change: Callable[[dict[str, dict[str, Any]]], None] | None = None,
        plan_env: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp_path
        self.ports = Ports(free_base())
        self.conf = make_conf(tmp_path / "conf", self.ports, change)
        self.out = tmp_path / "out"
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        env = base_env(tmp_path)
        env.update(
            SUPERVISOR_PD_PORT_BASE=str(self.ports.servers),
            SUPERVISOR_PD_API_PORT=str(self.ports.api),
            **(plan_env or {}),
        )
        args = ["plan", "--conf-dir", str(self.conf), "--output", str(self.out), "--json"]
        if isinstance(profile, HostProfile):
            # A profile of the caller's own (for example a synthetic 96-chip host).
            self.host = build_sim_host(profile, tmp_path / "host").root
            env = {
                **env,
                "PATH": f"{self.host / 'bin'}{os.pathsep}{env['PATH']}",
                "SUPERVISOR_PD_HOST_ROOT": str(self.host),
                "SUPERVISOR_PD_SIM_HOST": str(self.host),
            }
        else:
            args += ["--simulate", profile]
            self.host = tmp_path / "state" / "sim" / profile
        result = run_cli(args, env)
        assert result.returncode == 0, result.stderr
        self.plan = json.loads(result.stdout)
        self.env = dict(env)
        self.env["PATH"] = f"{self.host / 'bin'}{os.pathsep}{env['PATH']}"
        self.env["SUPERVISOR_PD_SIM_HOST"] = str(self.host)
        self.env.update(FAST_KNOBS)
        self.env.update(knobs or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # --- processes ----------------------------------------------------------------------

    def _start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, new_session: bool
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=new_session
        )
        log.close()
        self.processes[name] = process
        return process

    def server_ports(self, index: int) -> dict[str, int]:
        return self.plan["servers"][index - 1]["ports"]

    def start_server(self, index: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        argv = ["mindie_llm_server", "--config-file", str(self.out / f"config{index}.json")]
        # The daemon makes itself a process group leader, as the real one does.
        return self._start(f"server-{index}", argv, {**self.env, **(env or {})}, self.tmp, new_session=False)

    def start_coordinator(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        environment = {
            **self.env,
            "MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH": str(self.out / "ms_coordinator.json"),
            **(env or {}),
        }
        return self._start(
            "coordinator", ["mindie_motor_coordinator", "127.0.0.1"], environment, self.tmp, new_session=True
        )

    def start_controller(self, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        folder = cwd or self.tmp / "controller"
        folder.mkdir(exist_ok=True)
        environment = {
            **self.env,
            "MINDIE_MS_CONTROLLER_CONFIG_FILE_PATH": str(self.out / "ms_controller.json"),
            "GLOBAL_RANK_TABLE_FILE_PATH": str(self.out / "global_ranktable.json"),
            **(env or {}),
        }
        return self._start("controller", ["mindie_motor_controller"], environment, folder, new_session=True)

    def start_all(self) -> None:
        for index in range(1, len(self.plan["servers"]) + 1):
            self.start_server(index)
        for index in range(1, len(self.plan["servers"]) + 1):
            self.wait_server_up(index)
        self.start_coordinator()
        wait_until(lambda: self.status("/v1/startup")[0] == 200, what="the Coordinator's status port")
        self.start_controller()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        if sig == signal.SIGKILL:
            process.wait(10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name)
        for node in self.host.glob("run/*.lock"):
            node.unlink(missing_ok=True)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- endpoints ----------------------------------------------------------------------

    def mgmt(self, index: int, path: str, method: str = "GET", body: Any = None) -> tuple[int, bytes]:
        return http(method, f"http://127.0.0.1:{self.server_ports(index)['management']}{path}", body)

    def business(
        self, index: int, path: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        return http(method, f"http://127.0.0.1:{self.server_ports(index)['port']}{path}", body, headers=headers)

    def status(self, path: str) -> tuple[int, bytes]:
        return http("GET", f"http://127.0.0.1:{self.ports.status}{path}")

    def predict(self, path: str, body: Any, timeout: float = 20.0) -> tuple[int, bytes]:
        return http(
            "POST",
            f"http://127.0.0.1:{self.ports.predict}{path}",
            body,
            timeout=timeout,
            headers={"Content-Type": "application/json"},
        )

    def wait_server_up(self, index: int, timeout: float = 20.0) -> None:
        def up() -> bool:
            return self.mgmt(index, "/v1/config")[0] == 200 and self.mgmt(index, "/v1/status")[0] == 200

        wait_until(up, timeout, what=f"server-{index} to answer /v1/config and /v1/status")

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_until(lambda: self.status("/v1/readiness")[0] == 200, timeout, what="the Coordinator's readiness")

    def server_status(self, index: int) -> dict[str, Any]:
        code, body = self.mgmt(index, "/v1/status")
        return json.loads(body) if code == 200 else {}
