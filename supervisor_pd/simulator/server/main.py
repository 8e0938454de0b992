"""The simulated daemon's life (reference §2.8): start, listen, serve, stop.

`mindieservice_daemon --config-file <path> [--expert-parallel true]`
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor_pd.simulator.httpd import HttpServer, Router
from supervisor_pd.simulator.knobs import Knobs, first_time, load_knobs
from supervisor_pd.simulator.server import config as server_config
from supervisor_pd.simulator.server import tlsconf
from supervisor_pd.simulator.server.app import SimServer
from supervisor_pd.simulator.server.replies import log

if TYPE_CHECKING:
    from supervisor_pd.simulator.server.tlsstart import InterCommTls

USAGE = "Usage: mindieservice_daemon --config-file <path> [--expert-parallel true]\n"


def _parse_args(argv: list[str]) -> Path | None:
    path = None
    args = iter(argv)
    for arg in args:
        if arg == "--config-file":
            path = next(args, None)
        elif arg.startswith("--config-file="):
            path = arg.split("=", 1)[1]
        elif arg == "--expert-parallel":
            next(args, None)
        else:
            return None
    return Path(path) if path else None


def _port_used(port: int, lenient: bool) -> bool:
    # IsPortUsed (MindIE-LLM http_server.cpp) binds INADDR_ANY without SO_REUSEADDR: a port held on
    # any interface, or kept by a connection of an earlier run (FIN-WAIT-2, TIME_WAIT), stops the
    # start. `lenient` (SUPERVISOR_PD_SIM_PORT_CHECK=reuseaddr, the tests' choice) forgives the
    # lingering connections, so a killed Server can restart at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if lenient:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # First, like the real daemon (MindIE-LLM llm_daemon.cpp main): its workers share this process
    # group, and a failed setpgrp() ends it at once. It fails with EPERM in a session leader, so
    # a launcher that starts the Server with setsid stops every real Server here.
    try:
        os.setpgrp()
    except OSError as exc:
        log(f"[ERROR] Failed to set process group. errno is {exc.errno}")
        return 255
    path = _parse_args(argv)
    if path is None:
        sys.stderr.write(USAGE)
        return 1
    knobs = load_knobs()
    tlsconf.imitate_launcher()
    try:
        config = server_config.load(path)
    except server_config.ConfigError as exc:
        first, *more = str(exc).splitlines() or [""]
        log(f"[ERROR] Failed to load config {path}: {first}")
        for line in more:
            log(f"[ERROR] {line}")
        return 1
    exit_fault = knobs.fault(config.target, "exit")
    if exit_fault is not None and first_time(config.target, exit_fault):
        log(f"[ERROR] exiting at start with code {int(exit_fault.value or 1)} (injected fault)")
        return int(exit_fault.value or 1)
    intercomm = _start_intercomm_tls(config)  # EndPoint::StartEndpoint: gRPC before HTTP
    for port in sorted({config.port, config.management_port, config.metrics_port}):
        if _port_used(port, os.environ.get("SUPERVISOR_PD_SIM_PORT_CHECK") == "reuseaddr"):
            log(f"[ERROR] Port {port} is already in use. Failed to init endpoint.")
            os.killpg(os.getpgrp(), signal.SIGKILL)
    contexts = _https_contexts(config)
    hang = knobs.fault(config.target, "hang_after")
    if hang is not None and not hang.value and first_time(config.target, hang):
        _hang()  # hang_after=0: stopped before it listens, so it never answers
    # A worker process in the daemon's group, as the tokenizer and model workers are.
    worker = subprocess.Popen(["sleep", "2147483647"], stdin=subprocess.DEVNULL)  # noqa: S607
    orphan = knobs.fault(config.target, "orphan")
    if orphan is not None and first_time(config.target, orphan):
        _leave_grandchild(orphan.value or 5.0)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(_serve(config, knobs, worker, contexts, intercomm))


def _endpoint_failed(lines: str) -> None:
    """RunEP (MindIE-LLM llm_daemon.cpp): EndPoint::Start failed, the process group is killed."""
    for line in lines.splitlines():
        log(f"[ERROR] {line}")
    log(f"[ERROR] {_ENDPOINT_FAILED}")
    sys.stdout.flush()
    os.killpg(os.getpgrp(), signal.SIGKILL)


_ENDPOINT_FAILED = "Failed to init endpoint! Please check the service log or console output."


def _start_intercomm_tls(config: server_config.ServerConfig) -> InterCommTls | None:
    """GrpcWrapper::Start in dmi mode with interCommTLSEnabled: the files named and the
    certificates and CRLs checked now (fatal); their owner, mode and key size when used."""
    if config.intercomm is None:
        return None
    from supervisor_pd.simulator.server import tlsstart

    problem = tlsstart.intercomm_start_problem(config.intercomm)
    if problem is not None:
        _endpoint_failed(problem)
    return tlsstart.InterCommTls(config.intercomm)


def _https_contexts(config: server_config.ServerConfig) -> dict[str, Any]:
    """HttpServer::HttpServerInit -> CreateHttpServerPoint: one SSL context per plane (fatal)."""
    if not config.https:
        return {}
    from supervisor_pd.simulator import tls
    from supervisor_pd.simulator.server import tlsstart

    contexts = {}
    for cert_set in config.https:
        try:
            made = tlsstart.https_context(cert_set)
        except tls.TlsError as exc:
            _endpoint_failed(str(exc))
            raise  # not reached: the group is gone
        for warning in made.warnings:
            log(f"[WARN] {warning}")
        contexts[cert_set.plane] = made.context
    return contexts


def _leave_grandchild(seconds: float) -> None:
    if os.fork() == 0:
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", str(seconds)])  # noqa: S606, S607
        os._exit(0)
    os.wait()


async def _serve(
    config: server_config.ServerConfig,
    knobs: Knobs,
    worker: subprocess.Popen[bytes],
    contexts: dict[str, Any],
    intercomm: InterCommTls | None,
) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    stopping = False
    tasks: set[asyncio.Task[None]] = set()

    def stop() -> None:
        log("Now terminate instance!")
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def on_signal(signum: int) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        log(f"received signal {signal.Signals(signum).name}, stopping")
        tasks.add(loop.create_task(_shutdown(sim, knobs, worker, done)))

    sim = SimServer(config, knobs, on_stop=stop, intercomm=intercomm)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGUSR1, sim.toggle_slow)

    # Equal ports are one merged listener, with the certificates of its first plane (MindIE-LLM
    # http_server.cpp HttpServerInit: ALL_SAME and BUSINESS_MANAGEMENT_SAME use the business
    # set, MANAGEMENT_METRICS_SAME the management one).
    listeners: dict[tuple[str, int], tuple[Router, object, str]] = {}
    for host, port, router, gate, plane in (
        (config.ip, config.port, sim.business_routes(), sim.business_gate, "business"),
        (config.management_ip, config.management_port, sim.management_routes(), sim.management_gate, "management"),
        (config.management_ip, config.metrics_port, sim.metrics_routes(), None, "metrics"),
    ):
        key = (host, port)
        if key in listeners:
            listeners[key][0].extend(router)
        else:
            listeners[key] = (router, gate, plane)
    servers = []
    for (host, port), (router, gate, plane) in listeners.items():
        server = HttpServer(router, gate)  # type: ignore[arg-type]
        try:
            await server.listen(host, port, ssl=contexts.get(plane))
        except OSError as exc:
            log(f"[ERROR] Failed to listen on {host}:{port}: {exc.strerror}")
            os.killpg(os.getpgrp(), signal.SIGKILL)
        servers.append(server)

    await asyncio.sleep(knobs.startup)
    if not config.dmi:
        await asyncio.sleep(knobs.model_load)  # standard mode loads the model at start
        sim.state.model_loaded = True
    sim.state.healthy = True
    sim.start_timers()
    print("Daemon start success!", flush=True)
    _schedule_faults(config.target, knobs, loop)
    await done.wait()
    for server in servers:
        await server.close()
    await sim.close()
    return 0


def _schedule_faults(target: str, knobs: Knobs, loop: asyncio.AbstractEventLoop) -> None:
    crash = knobs.fault(target, "crash_after")
    if crash is not None and first_time(target, crash):
        loop.call_later(crash.value or 0.0, _crash)
    hang = knobs.fault(target, "hang_after")
    if hang is not None and hang.value and first_time(target, hang):
        loop.call_later(hang.value, _hang)


def _crash() -> None:
    log("[ERROR] crashing (injected fault)")
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _hang() -> None:
    log("hanging (injected fault)")
    os.kill(os.getpid(), signal.SIGSTOP)


async def _shutdown(sim: SimServer, knobs: Knobs, worker: subprocess.Popen[bytes], done: asyncio.Event) -> None:
    """health false, wait 5 s, TERM the group, wait up to 15 s, KILL what is left, SIGCHLD the
    parent, abort (reference §2.8)."""
    sim.state.healthy = False
    await asyncio.sleep(knobs.scaled(5.0))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgrp(), signal.SIGTERM)  # our own handler ignores the echo
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(worker.wait, knobs.scaled(15.0))
    if worker.poll() is None:
        worker.kill()
        worker.wait()
    with contextlib.suppress(ProcessLookupError):
        os.kill(os.getppid(), signal.SIGCHLD)
    log("daemon stopped")
    if knobs.abort_on_exit:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        sys.stdout.flush()
        os.abort()
    done.set()
