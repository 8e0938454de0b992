"""Simulated MindIE Coordinator (`ms_coordinator` / `mindie_motor_coordinator`), reference §4.

`ms_coordinator [predict_ip [manage_ip]]`; config from $MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH,
else ../conf/ms_coordinator.json. Four listeners: predict (inference), manage (the Controller's
refreshes), status (probes), external (aggregated /metrics).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from supervisor_pd.simulator import motortls
from supervisor_pd.simulator.coordinator import tlslinks
from supervisor_pd.simulator.coordinator.config import ConfigError, Settings, load_settings
from supervisor_pd.simulator.coordinator.instances import DecodeStream, Instance, admit, log
from supervisor_pd.simulator.knobs import Knobs, first_time, load_knobs

QUARANTINE = 120.0  # ControllerListener::IdsAddOrUpdate: minutes(2)


class Coordinator:
    def __init__(self, settings: Settings, knobs: Knobs) -> None:
        self.settings = settings
        self.knobs = knobs
        self.instances: dict[int, Instance] = {}
        self.streams: dict[int, DecodeStream] = {}
        self.waiters: dict[str, asyncio.Queue[tuple[str, bytes]]] = {}
        self.refreshed = False
        # AddToFaulty: instance id -> when it was quarantined with its virtual id's instances.
        self.faulty: dict[int, float] = {}
        self.inflight = 0
        self._ids = itertools.count(random.randrange(1, 2**40))  # noqa: S311
        self._metrics_cache: tuple[float, str] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.business = motortls.Link()  # mindie_client: P requests, /dresult, /v1/tokenizer
        self.metrics_link = tlslinks.MetricsLink(settings.tls.get("mindie_mangment"))

    # --- readiness ----------------------------------------------------------------------

    def routable(self) -> tuple[list[Instance], list[Instance]]:
        prefill = [i for i in self.instances.values() if i.is_prefill and i.online]
        decode = [
            i
            for i in self.instances.values()
            if i.is_decode and i.online and i.id in self.streams and self.streams[i.id].connected.is_set()
        ]
        return prefill, decode

    @property
    def ready(self) -> bool:
        prefill, decode = self.routable()
        return bool(prefill) and bool(decode)

    # --- manage port --------------------------------------------------------------------

    async def refresh(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            items = body["instances"]
            assert isinstance(items, list)
        except (ValueError, KeyError, AssertionError, TypeError):
            return web.json_response({"error": "invalid refresh body"}, status=400)
        admitted: dict[int, Instance] = {}
        for item in items:
            found, why = admit(item)
            if found is None:
                log(f"instance {item.get('id') if isinstance(item, dict) else '?'} not admitted: {why}")
                continue
            admitted[found.id] = found
        now = time.monotonic()
        for instance_id in [i for i in admitted if i in self.faulty]:
            # IdsAddOrUpdate: a quarantined id is ignored for 2 minutes, then taken again.
            if now - self.faulty[instance_id] <= self.knobs.scaled(QUARANTINE):
                del admitted[instance_id]
            else:
                del self.faulty[instance_id]
        for gone in set(self.instances) - set(admitted):
            await self._remove(gone)
        for instance_id, fresh in admitted.items():
            known = self.instances.get(instance_id)
            if known is not None and (known.ip, known.port, known.role) == (fresh.ip, fresh.port, fresh.role):
                known.peers, known.static, known.dynamic = fresh.peers, fresh.static, fresh.dynamic
                continue
            if known is not None:
                await self._remove(instance_id)
            self.instances[instance_id] = fresh
            role = "prefill" if fresh.is_prefill else "decode"
            log(f"instance {instance_id} added as {role} ({fresh.ip}:{fresh.port})")
            if fresh.is_decode:
                assert self.session is not None
                stream = DecodeStream(
                    fresh, self.session, self.waiters, self.settings.max_retry, self.quarantine, self.business
                )
                self.streams[instance_id] = stream
                stream.start()
        self.refreshed = True
        return web.json_response({"result": "ok"})

    async def quarantine(self, lost: Instance) -> None:
        """RequestRepeater::AddToFaulty (MindIE-Motor DExceptionHandler.cpp): the lost D and every
        instance sharing its virtual id are removed and refused for 2 minutes (ClusterNodes
        AddFaultNode, ControllerListener IdsAddOrUpdate). In single-container mode that is all."""
        now = time.monotonic()
        fellows = [lost.id] + [i.id for i in self.instances.values() if i.virtual_id == lost.virtual_id and i != lost]
        log(f"decode instance {lost.id} lost: instances {fellows} (virtual id {lost.virtual_id}) quarantined")
        for instance_id in fellows:
            self.faulty[instance_id] = now
            await self._remove(instance_id)

    async def _remove(self, instance_id: int) -> None:
        instance = self.instances.pop(instance_id, None)
        stream = self.streams.pop(instance_id, None)
        if stream is not None and not stream.broken:
            await stream.stop()
        if instance is not None:
            log(f"instance {instance_id} removed")
            for request_id in list(instance.tasks):
                queue = self.waiters.get(request_id)
                if queue is not None:
                    queue.put_nowait(("error", b'{"error":"the instance serving this request left the cluster"}'))

    async def coordinator_info(self, request: web.Request) -> web.Response:
        if not self.refreshed:
            return web.json_response({"error": "no instance information yet"}, status=503)
        schedule = [
            {"id": i.id, "allocated_slots": i.outstanding, "allocated_blocks": i.outstanding}
            for i in self.instances.values()
        ]
        return web.json_response(
            {
                "schedule_info": schedule,
                "request_num": self.inflight,
                "request_length_info": {"input_len": 0, "output_len": 0},
            }
        )

    async def set_online(self, request: web.Request) -> web.Response:
        online = request.path.endswith("/online")
        try:
            ids = (await request.json())["ids"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "invalid body"}, status=400)
        for instance_id in ids:
            if instance_id in self.instances:
                self.instances[instance_id].online = online
        return web.json_response({"result": "ok"})

    async def tasks(self, request: web.Request) -> web.Response:
        instance = self.instances.get(
            int(request.query.get("id", "-1")) if request.query.get("id", "").isdigit() else -1
        )
        return web.json_response({"tasks": sorted(instance.tasks) if instance else []})

    async def query_tasks(self, request: web.Request) -> web.Response:
        try:
            ids = (await request.json()).get("ids", [])
        except (ValueError, AttributeError):
            return web.json_response({"error": "invalid body"}, status=400)
        return web.json_response({str(i): len(self.instances[i].tasks) for i in ids if i in self.instances})

    # --- status port --------------------------------------------------------------------

    async def always(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "", "status": "0"})

    async def readiness(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"message": "not ready", "status": "1"}, status=503)
        model = request.match_info.get("model")
        if model is not None and model not in {i.model_name for i in self.instances.values()}:
            return web.json_response({"message": f"model {model} is not served", "status": "1"}, status=503)
        return web.json_response({"message": "", "status": "0"})

    # --- external port ------------------------------------------------------------------

    async def metrics(self, request: web.Request) -> web.Response:
        from supervisor_pd.simulator.coordinator.aggregate import aggregate

        now = time.monotonic()
        if self._metrics_cache is None or now - self._metrics_cache[0] > self.settings.reuse_time:
            assert self.session is not None
            text = await aggregate(self.session, list(self.instances.values()), self.metrics_link.get())
            self._metrics_cache = (now, text)
        return web.Response(text=self._metrics_cache[1], content_type="text/plain")

    def next_id(self) -> str:
        return str(next(self._ids))


async def _serve(settings: Settings, knobs: Knobs) -> int:
    from supervisor_pd.simulator.coordinator.router import Router

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    coordinator = Coordinator(settings, knobs)
    business = tlslinks.business_link(settings.tls.get("mindie_client"))
    if business is None:
        return 0  # Coordinator::Run returned -1 at RequestRepeater::Init; main() ignores it
    coordinator.business = business
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, read_bufsize=1 << 20) as session:
        coordinator.session = session
        router = Router(coordinator, session)
        # Coordinator::Run: the manage, external and status servers start on their own threads,
        # then the predict (data) server on the main one.
        apps = (
            (settings.manage_ip, settings.manage_port, _manage_app(coordinator), "controller_server"),
            (settings.manage_ip, settings.status_port, _status_app(coordinator), "status"),
            (settings.manage_ip, settings.external_port, _external_app(coordinator), "external"),
            (settings.predict_ip, settings.predict_port, router.app(), "request_server"),
        )
        runners = []
        dead: list[Any] = []  # listeners whose TLS set-up failed (tlslinks.dead_listener)
        for host, port, app, pair in apps:
            context, refused = tlslinks.listener_context(settings.tls.get(pair))
            if refused and pair == "request_server":
                tlslinks.terminate()
            if refused:
                try:
                    dead.append(tlslinks.dead_listener(host, port))
                except OSError as exc:
                    log(f"[ERROR] failed to listen on {host}:{port}: {exc.strerror}")
                    return 1
                continue
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port, ssl_context=context).start()
            except OSError as exc:
                log(f"[ERROR] failed to listen on {host}:{port}: {exc.strerror}")
                return 1
            runners.append(runner)
        log(
            f"listening: predict {settings.predict_ip}:{settings.predict_port}, manage {settings.manage_ip}:"
            f"{settings.manage_port}, status {settings.status_port}, external {settings.external_port}"
        )
        _schedule_faults(knobs, loop)
        await stop.wait()
        log("stopping")
        for stream in coordinator.streams.values():
            await stream.stop()
        for runner in runners:
            await runner.cleanup()
        for sock in dead:
            sock.close()
    return 0


def _manage_app(coordinator: Coordinator) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/instances/refresh", coordinator.refresh)
    app.router.add_get("/v1/coordinator_info", coordinator.coordinator_info)
    app.router.add_post("/v1/instances/offline", coordinator.set_online)
    app.router.add_post("/v1/instances/online", coordinator.set_online)
    app.router.add_get("/v1/instances/tasks", coordinator.tasks)
    app.router.add_post("/v1/instances/query_tasks", coordinator.query_tasks)
    app.router.add_get("/recvs_info", coordinator.always)
    app.router.add_post("/backup_info", coordinator.always)
    return app


def _status_app(coordinator: Coordinator) -> web.Application:
    app = web.Application()
    for path in ("/v1/startup", "/v1/health", "/v2/health/live"):
        app.router.add_get(path, coordinator.always)
    app.router.add_get("/v1/readiness", coordinator.readiness)
    app.router.add_get("/v2/health/ready", coordinator.readiness)
    app.router.add_get("/v2/models/{model}/ready", coordinator.readiness)
    return app


def _external_app(coordinator: Coordinator) -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", coordinator.metrics)
    return app


def _schedule_faults(knobs: Knobs, loop: asyncio.AbstractEventLoop) -> None:
    crash = knobs.fault("coordinator", "crash_after")
    if crash is not None and first_time("coordinator", crash):
        loop.call_later(crash.value or 0.0, os.kill, os.getpid(), signal.SIGKILL)
    hang = knobs.fault("coordinator", "hang_after")
    if hang is not None and first_time("coordinator", hang):
        loop.call_later(hang.value or 0.0, os.kill, os.getpid(), signal.SIGSTOP)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    knobs = load_knobs()
    exit_fault = knobs.fault("coordinator", "exit")
    if exit_fault is not None and first_time("coordinator", exit_fault):
        log(f"[ERROR] exiting at start with code {int(exit_fault.value or 1)} (injected fault)")
        return int(exit_fault.value or 1)
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            log(f"[ERROR] {line}")
        return 1
    return asyncio.run(_serve(settings, knobs))
