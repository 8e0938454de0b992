"""Simulated MindIE Controller (`ms_controller` / `mindie_motor_controller`), reference §3.

Config: $MINDIE_MS_CONTROLLER_CONFIG_FILE_PATH, else ./conf/ms_controller.json. Ranktable:
$GLOBAL_RANK_TABLE_FILE_PATH, else global_rank_table_file_path. Listener: (POD_IP or
http_server.ip):http_server.port with /v1/startup and /v1/health.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from supervisor_pd.simulator import motortls
from supervisor_pd.simulator.controller.ranktable import COORDINATOR_GROUP
from supervisor_pd.simulator.controller.scheduler import NodeScheduler, log, uses_clusterd
from supervisor_pd.simulator.files import motor_config_rules, motor_read_error
from supervisor_pd.simulator.knobs import Knobs, first_time, load_knobs
from supervisor_pd.simulator.tls import TlsError

DEPLOY_MODES = {"pd_separate", "pd_disaggregation", "pd_disaggregation_single_container", "single_node"}
_PROBE_BODY = {"message": "", "status": "0"}


class ConfigError(Exception):
    pass


def _rate(name: str, configured: int) -> int:
    # An invalid value falls back to the file's value, as the real Controller does.
    text = os.environ.get(name, "")
    if text.strip().isdigit() and 0 <= int(text) <= 767:
        return int(text)
    return configured


def load_config() -> tuple[dict[str, Any], Path, dict[str, motortls.TlsItems]]:
    given = os.environ.get("MINDIE_MS_CONTROLLER_CONFIG_FILE_PATH")
    path = Path(given or "./conf/ms_controller.json")
    refused = motor_read_error(str(path), *motor_config_rules(given is not None))  # ControllerConfig::Init
    if refused is not None:
        raise ConfigError(f"Initialize controller configuration failed: {refused}")
    try:
        config = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a JSON object")
    if config.get("deploy_mode") not in DEPLOY_MODES:
        raise ConfigError(f"deploy_mode {config.get('deploy_mode')!r} is not one of {sorted(DEPLOY_MODES)}")
    server = config.get("http_server")
    if not isinstance(server, dict) or not isinstance(server.get("port"), int):
        raise ConfigError("http_server.ip and http_server.port are required")
    for key in ("default_p_rate", "default_d_rate"):
        value = config.get(key, 0)
        if not isinstance(value, int) or not 0 <= value <= 767:
            raise ConfigError(f"{key} must be an integer in [0, 767]")
    # ControllerConfig::IsConfigJsonValid: the four switches of GenerateTlsConfigPairs are
    # required, and the items of each one on (IsTlsConfigJsonStringValid). cluster, etcd_server,
    # ccae and alarm serve features a single container does not use.
    pairs, problems = motortls.read_pairs(config.get("tls_config"), motortls.CONTROLLER_PAIRS, motortls.CONTROLLER_KMC)
    if problems:
        raise ConfigError("config JSON is invalid\n" + "\n".join(problems))
    ranktable = os.environ.get("GLOBAL_RANK_TABLE_FILE_PATH") or config.get("global_rank_table_file_path")
    if not ranktable:
        raise ConfigError("no ranktable: set GLOBAL_RANK_TABLE_FILE_PATH or global_rank_table_file_path")
    return config, Path(ranktable), pairs


def main(argv: list[str] | None = None) -> int:
    knobs = load_knobs()
    exit_fault = knobs.fault("controller", "exit")
    if exit_fault is not None and first_time("controller", exit_fault):
        log(f"[ERROR] exiting at start with code {int(exit_fault.value or 1)} (injected fault)")
        return int(exit_fault.value or 1)
    try:
        config, ranktable, pairs = load_config()
    except ConfigError as exc:
        first, *more = str(exc).splitlines()
        log(f"[ERROR] invalid configuration: {first}")
        for line in more:
            log(f"[ERROR] {line}")
        return 1
    p_rate = _rate("MINDIE_MS_P_RATE", config.get("default_p_rate", 0))
    d_rate = _rate("MINDIE_MS_D_RATE", config.get("default_d_rate", 0))
    if (p_rate == 0) != (d_rate == 0):
        p_rate, d_rate = config.get("default_p_rate", 0), config.get("default_d_rate", 0)
    if p_rate == 0:
        p_rate = d_rate = 1  # rates 0/0: the DIGS decision; the simulator splits evenly
    return asyncio.run(_run(config, ranktable, (p_rate, d_rate), knobs, pairs))


def _tls_failed(exc: TlsError, *more: str) -> int:
    for line in [*str(exc).splitlines(), *more, "[Controller] Init controller failed."]:
        log(f"[ERROR] {line}")
    return 1  # main(): exit(1) after a failed Controller::Init


def _client_link(items: motortls.TlsItems) -> motortls.Link:
    """HttpClient::Init with the pair's items (TlsError when its files are refused)."""
    if not items.enabled:
        return motortls.Link()
    context, warnings = motortls.client_context(items)
    for warning in warnings:
        log(f"[WARN] {warning}")
    return motortls.Link(context)


async def _run(
    config: dict[str, Any],
    ranktable: Path,
    rates: tuple[int, int],
    knobs: Knobs,
    pairs: dict[str, motortls.TlsItems],
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    ip = os.environ.get("POD_IP") or config["http_server"]["ip"]
    port = config["http_server"]["port"]
    await asyncio.sleep(knobs.scaled(2.0))  # the probe server's own start-up wait
    # Controller::InitParams: ProbeServer::Init (http_server: its thread fails, Init sees it
    # after 2 s), then StatusUpdater::Init and NodeScheduler::Init make their clients
    # (request_server, request_coordinator). Any failure: Controller::Init fails, exit 1.
    context = None
    if pairs["http_server"].enabled:
        try:
            context, warnings = motortls.listener_context(pairs["http_server"])
        except TlsError as exc:
            return _tls_failed(
                exc, "[ProbeServer] Failed to run the http server", "[ProbeServer] Probe server run failed."
            )
        for warning in warnings:
            log(f"[WARN] {warning}")
    try:
        server_link = _client_link(pairs["request_server"])
        coordinator_link = _client_link(pairs["request_coordinator"])
    except TlsError as exc:
        return _tls_failed(
            exc,
            "[StatusUpdater] Initialize status updater failed because create server client or "
            "coordinator client failed.",
        )
    runner = web.AppRunner(_probe_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, ip, port, ssl_context=context).start()
    except OSError as exc:
        log(f"[ERROR] probe server failed to listen on {ip}:{port}: {exc.strerror}")
        return 1
    log(f"probe server listening on {ip}:{port}")
    if uses_clusterd():
        # Controller::Init starts its ClusterD client; ControllerConfig::InitClusterD needs
        # cluster_port (and cluster_tls_*) for it to have anywhere to connect.
        where = f"{os.environ['MINDX_SERVER_IP']}:{config['cluster_port']}" if "cluster_port" in config else "nowhere"
        log(f"[WARN] ClusterD client started for task {os.environ['MINDX_TASK_ID']} ({where}): no ClusterD answers")
    coordinator = (_coordinator_ip(ranktable), int(config.get("mindie_ms_coordinator_port", 1026)))
    scheduler = NodeScheduler(config, ranktable, rates, coordinator, knobs, server_link, coordinator_link)
    work = loop.create_task(scheduler.run())
    _schedule_faults(knobs, loop)
    stall = knobs.fault("controller", "stall_after")
    if stall is not None and first_time("controller", stall):
        loop.call_later(stall.value or 0.0, _stall, work)
    await stop.wait()
    log("stopping (the Servers keep running)")
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    await runner.cleanup()
    return 0


def _coordinator_ip(ranktable: Path) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError, StopIteration):
        data = json.loads(ranktable.read_bytes())
        group = next(g for g in data["server_group_list"] if g.get("group_id") == COORDINATOR_GROUP)
        return group["server_list"][0]["server_ip"]
    return "127.0.0.1"


def _probe_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        # Routes match by prefix, as the Controller's HttpServer does.
        if request.method == "GET" and request.path.startswith(("/v1/startup", "/v1/health")):
            return web.json_response(_PROBE_BODY)
        return web.Response(status=404, text=f"Cannot find the resource {request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _stall(work: asyncio.Task[None]) -> None:
    log("scheduler stalled (injected fault): the probe server still answers, nothing is refreshed")
    work.cancel()


def _schedule_faults(knobs: Knobs, loop: asyncio.AbstractEventLoop) -> None:
    crash = knobs.fault("controller", "crash_after")
    if crash is not None and first_time("controller", crash):
        loop.call_later(crash.value or 0.0, os.kill, os.getpid(), signal.SIGKILL)
    hang = knobs.fault("controller", "hang_after")
    if hang is not None and first_time("controller", hang):
        loop.call_later(hang.value or 0.0, os.kill, os.getpid(), signal.SIGSTOP)


if __name__ == "__main__":
    sys.exit(main())
