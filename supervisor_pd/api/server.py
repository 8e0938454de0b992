"""The HTTP port and the local control socket: one aiohttp application, two sites.

| path | what |
|---|---|
| GET /livez, /readyz, /startupz (`?verbose`, `/readyz/<check>`) | probes, from memory |
| GET /v1/status, /v1/processes, /v1/processes/{name}, /v1/processes/{name}/logs | status |
| GET /metrics | Prometheus text: ours and every child's |
| GET /metrics/pod | the pod's gauges and readiness alone (for an endpoint picker) |
| POST the Coordinator's inference paths, GET /v1/models | the inference API |
| POST /v1/processes/{name}/restart, POST /v1/drain | control: a bearer token on TCP, none on the socket |
| POST /v1/processes/{name}/stop, /start, /v1/servers/rolling-restart | control, the same (api/operator.py) |
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import resource
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from supervisor_pd import unixsock
from supervisor_pd.api import health
from supervisor_pd.api.connections import BACKLOG, MINIMUM, Connections, capacity, listening_socket, open_descriptors
from supervisor_pd.api.control_socket import remove_own_socket, remove_stale_socket
from supervisor_pd.api.errors import body_policy, errors, index, json_response
from supervisor_pd.api.hosts import HostPolicy
from supervisor_pd.api.logstream import follow
from supervisor_pd.api.metrics import MetricsEndpoint
from supervisor_pd.api.operator import OperatorRoutes
from supervisor_pd.api.proxy import Proxy
from supervisor_pd.api.refusals import Refusals
from supervisor_pd.api.renewal import Renewal
from supervisor_pd.api.requests import shown
from supervisor_pd.api.status import process, status
from supervisor_pd.api.tls import has_client_certificate, server_context
from supervisor_pd.errors import InputError
from supervisor_pd.plan.model import Plan
from supervisor_pd.runtime.events import Drain, Restart
from supervisor_pd.runtime.logs import SUPERVISOR
from supervisor_pd.runtime.snapshot import ProcessView
from supervisor_pd.runtime.states import ALIVE, ProcState
from supervisor_pd.settings import Settings, env_name

if TYPE_CHECKING:
    from supervisor_pd.certfiles import CertKeeper
    from supervisor_pd.runtime.supervisor import Supervisor

PROBES = {"livez": health.liveness, "readyz": health.readiness, "startupz": health.startup}
MAX_TAIL = 1000


class _ServerLog(logging.Handler):
    """aiohttp's own log, into the supervisor's: a request its HTTP parser refuses (a client's
    fault, answered 400) is one line there, not a traceback; anything else keeps its traceback."""

    def __init__(self, supervisor: Supervisor, refusals: Refusals) -> None:
        super().__init__(logging.WARNING)
        self.supervisor = supervisor
        self.refusals = refusals

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            reason = (error.message or "").strip().splitlines()
            line = f"{record.getMessage()}: {error.code} {shown(reason[0] if reason else '')}"
            self.refusals.note("malformed", line)
            return
        for line in self.format(record).splitlines():
            self.supervisor.log(line)


# How long idle keep-alive connections get, at the very end, to be used once more and closed.
LINGER_SECONDS = 2.0


class ApiServer:
    """Reads the supervisor only through `snapshot()` and acts on it only through `post()`."""

    def __init__(self, supervisor: Supervisor, plan: Plan, settings: Settings, certs: CertKeeper | None = None) -> None:
        self.supervisor = supervisor
        self.settings = settings
        self.plan = plan
        self.token = settings.token()
        self.tls = server_context(settings)
        self.metrics = MetricsEndpoint(
            plan, supervisor.snapshot, settings.metrics_timeout, settings.metrics_cache_seconds
        )
        self.proxy = Proxy(self.plan, settings, self.metrics.proxy)
        self.refusals = Refusals(supervisor.log, self.metrics.registry)
        self.hosts = HostPolicy(settings.api_host_names, self.refusals.note)
        # The budget is set from the descriptor limit when the port opens (start).
        self.connections = Connections(settings.api_max_connections or 1 << 30, self.refusals.note)
        self._tcp: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self.socket_path: Path = settings.socket_path
        self._socket_inode: tuple[int, int] | None = None
        self.renewal = (
            Renewal(certs, plan.tls, supervisor, self.proxy, settings.stop_seconds, settings.ready_seconds)
            if certs is not None
            else None
        )
        supervisor.drain_hooks.append(self.proxy.drain)
        supervisor.on_probe.append(self.metrics.observe_health)

    async def _close_connections_gently(self, runner: web.AppRunner) -> None:
        """Stop listening, then give keep-alive connections up to LINGER_SECONDS to carry one more
        request each (answered with `Connection: close`) before the rest are closed: a connection
        closed while its client is sending on it loses that request without a reply."""
        if self._tcp is not None:
            self._tcp.close()
        for site in list(runner.sites):
            await site.stop()
        self.proxy.draining = True
        server = runner.server
        deadline = time.monotonic() + LINGER_SECONDS
        # Polled: aiohttp has no event for "no connection left".
        while server is not None and server.connections and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _close_when_draining(self, request: web.Request, response: web.StreamResponse) -> None:
        """While draining, every reply closes its connection: an idle keep-alive connection left
        for the final shutdown to close could be closed under a request the client is sending."""
        if self.proxy.draining:
            # Both: the header tells the client, force_close makes the server close after it
            # (by this hook aiohttp has already chosen the headers from keep-alive).
            response.force_close()
            response.headers["Connection"] = "close"

    def app(self) -> web.Application:
        limit = self.settings.proxy_max_body_bytes or self.plan.coordinator.body_limit
        app = web.Application(
            middlewares=[body_policy(self.refusals.note), self.connections.middleware, errors, self.hosts.middleware],
            client_max_size=limit,
        )
        app.on_response_prepare.append(self._close_when_draining)
        for name in PROBES:
            app.router.add_get(f"/{name}", self.probe)
            app.router.add_get(f"/{name}/{{check}}", self.probe)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/processes", self.processes)
        app.router.add_get("/v1/processes/{name}", self.one_process)
        app.router.add_get("/v1/processes/{name}/logs", self.logs)
        app.router.add_post("/v1/processes/{name}/restart", self.restart)
        app.router.add_post("/v1/drain", self.drain)
        OperatorRoutes(self).add(app)
        app.router.add_post("/v1/tls/renew", self.renew)
        app.router.add_get("/metrics", self.render_metrics)
        app.router.add_get("/metrics/pod", self.render_pod_metrics)
        app.router.add_get("/", self.index)
        self.proxy.add_routes(app)
        return app

    async def index(self, request: web.Request) -> web.Response:
        return index(
            {
                "probes": "GET /livez /readyz /startupz (?verbose, /readyz/<check>)",
                "status": "GET /v1/status /v1/processes /v1/processes/{name} /v1/processes/{name}/logs[?follow=1]",
                "metrics": "GET /metrics (GET /metrics/pod: the pod's gauges alone)",
                "inference": "POST /v1/chat/completions /v1/completions and the Coordinator's other paths; "
                "GET /v1/models",
                "control": "POST /v1/processes/{name}/restart /stop /start, /v1/servers/rolling-restart, /v1/drain "
                "(a bearer token on TCP)",
            }
        )

    async def start(self) -> None:
        await self.proxy.start()
        if self.renewal is not None:
            self.renewal.start()
        # A logger of this server's own, outside logging's tree: nothing else reaches its handler.
        logger = logging.Logger("supervisor_pd.api.http")
        logger.addHandler(_ServerLog(self.supervisor, self.refusals))
        # Bodies are never inflated (api/requests.py), and a body left unread after a reply is not
        # read on (api/errors.py closes such a connection or has read the body already).
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handler_cancellation=True,
            logger=logger,
            auto_decompress=False,
            lingering_time=0,
        )
        await runner.setup()
        self._runner = runner
        host, port = self.plan.supervisor.api_host, self.plan.supervisor.api_port
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        children = len(self.supervisor.snapshot().processes)
        limit = capacity(soft, open_descriptors(), children, self.settings.api_max_connections)
        self.connections.limit = limit
        self.proxy.max_in_flight = self.connections.max_in_flight
        assert runner.server is not None
        try:
            # Not a TCPSite: the protocol factory is the connection budget's (api/connections.py).
            self._tcp = await asyncio.get_running_loop().create_server(
                self.connections.factory(runner.server),
                sock=listening_socket(host, port),
                backlog=BACKLOG,
                ssl=self.tls,
            )
        except OSError as exc:
            await self.stop()
            raise InputError(env_name("api_port"), f"port {port} on {host} cannot be used: {exc.strerror}") from None
        try:
            self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            remove_stale_socket(self.socket_path)
            sock = unixsock.listen(self.socket_path)
            made = self.socket_path.lstat()
            self._socket_inode = (made.st_dev, made.st_ino)
        except OSError as exc:
            await self.stop()
            raise InputError(env_name("api_socket"), f"{self.socket_path} cannot be created: {exc.strerror}") from None
        except InputError:
            await self.stop()
            raise
        await web.SockSite(runner, sock).start()
        self.supervisor.log(
            f"HTTP{'S' if self.tls else ''} port {host}:{port} (holds up to {limit} client connections); "
            f"control socket {self.socket_path}"
        )
        if limit <= MINIMUM:
            self.supervisor.log(
                f"warning: the open-file limit ({soft}) leaves the HTTP port room for only {limit} client "
                "connections; raise it (ulimit -n, the container runtime's nofile)"
            )

    async def stop(self) -> None:
        self.supervisor.sink.feed.end()  # `logs -f` streams end with the supervisor
        if self.renewal is not None:
            await self.renewal.stop()
        if self._runner is not None:
            await self._close_connections_gently(self._runner)
            await self._runner.cleanup()
            self._runner = None
        await self.proxy.close()
        await self.metrics.close()
        remove_own_socket(self.socket_path, self._socket_inode)
        self._socket_inode = None

    # --- probes -------------------------------------------------------------------------

    async def probe(self, request: web.Request) -> web.Response:
        kind = request.path.strip("/").split("/")[0]
        checks = PROBES[kind](self.supervisor.snapshot())
        wanted = request.match_info.get("check")
        if wanted is not None:
            checks = [c for c in checks if c.name == wanted]
            if not checks:
                return json_response({"error": f"no check named {shown(wanted)!r} in /{kind}"}, 404)
        ok = all(check.ok for check in checks)
        if "verbose" in request.query:
            lines = [f"[{'+' if c.ok else '-'}]{c.name} {'ok' if c.ok else 'failed'}: {c.detail}" for c in checks]
            lines.append(f"{kind} check {'passed' if ok else 'failed'}")
            return web.Response(status=200 if ok else 503, text="\n".join(lines) + "\n")
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else f"{kind} check failed\n")

    # --- status -------------------------------------------------------------------------

    def _child(self, request: web.Request) -> ProcessView:
        name = request.match_info["name"]
        view = self.supervisor.snapshot()
        child = view.process(name)
        if child is None:
            known = ", ".join(p.name for p in view.processes)
            raise _NotFound(f"no process named {shown(name)!r}; known: {known}")
        return child

    async def status(self, request: web.Request) -> web.Response:
        return json_response(status(self.plan, self.supervisor.snapshot()))

    async def processes(self, request: web.Request) -> web.Response:
        return json_response([process(self.plan, p) for p in self.supervisor.snapshot().processes])

    async def one_process(self, request: web.Request) -> web.Response:
        try:
            child = self._child(request)
        except _NotFound as exc:
            return json_response({"error": str(exc)}, 404)
        return json_response(process(self.plan, child))

    async def logs(self, request: web.Request) -> web.StreamResponse:
        # A process's output may hold what its requests carried: the token on TCP, as for control.
        denied = self._denied(request, "log")
        if denied is not None:
            return denied
        name = request.match_info["name"]
        names = [p.name for p in self.supervisor.snapshot().processes]
        if name != SUPERVISOR and name not in names:
            known = ", ".join([*names, SUPERVISOR])
            return json_response({"error": f"no process named {shown(name)!r}; known: {known}"}, 404)
        try:
            tail = int(request.query.get("tail", "100"))
            after = int(request.query["after"]) if "after" in request.query else None
        except ValueError:
            return json_response({"error": "tail and after must be whole numbers"}, 400)
        if not 1 <= tail <= MAX_TAIL:
            return json_response({"error": f"tail must be between 1 and {MAX_TAIL}"}, 400)
        if after is not None and after < 0:
            return json_response({"error": "after must be 0 or more"}, 400)
        if request.query.get("follow", "0").lower() not in ("0", "false", "no"):  # `?follow` alone follows
            return await follow(request, self.supervisor.sink, name, tail)
        lines, next_seq = self.supervisor.sink.tail_since(name, tail, after)
        return json_response({"name": name, "lines": lines, "next": next_seq})

    async def render_metrics(self, request: web.Request) -> web.Response:
        body = await self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def render_pod_metrics(self, request: web.Request) -> web.Response:
        body = await self.metrics.render_pod()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    # --- control ------------------------------------------------------------------------

    @staticmethod
    def _on_socket(request: web.Request) -> bool:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        return sock is not None and sock.family == socket.AF_UNIX

    def _denied(self, request: web.Request, what: str = "control") -> web.Response | None:
        if self._on_socket(request):
            return None  # the socket is 0600: reaching it is the authentication
        if self.settings.api_tls_client_ca is not None and has_client_certificate(request.transport):
            return None  # signed by the client CA (api/tls.py)
        peer = request.remote or "?"
        if self.token is None:
            self.refusals.note(
                f"{what}-off",
                f"{what} request {request.method} {shown(request.path)} from {peer} refused: no token is set",
            )
            return json_response(
                {"error": f"{what} on the TCP port is off: set {env_name('api_token')} or use the local socket"}, 403
            )
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        # The scheme is case-insensitive (RFC 7235); the token is compared exactly.
        given = credentials if scheme.lower() == "bearer" else ""
        if not hmac.compare_digest(given.encode(errors="replace"), self.token.encode()):
            self.refusals.note(
                "unauthorized",
                f"{what} request {request.method} {shown(request.path)} from {peer} refused: no valid token",
            )
            return json_response(
                {"error": "a valid bearer token is required"}, 401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    async def restart(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        try:
            child = self._child(request)
        except _NotFound as exc:
            return json_response({"error": str(exc)}, 404)
        if child.state not in ALIVE or child.state is ProcState.STOPPING or self.supervisor.snapshot().stopping:
            return json_response({"error": f"{child.name} is {child.state.value}, not running"}, 409)
        self.supervisor.log(f"restart of {child.name} requested through the API")
        self.supervisor.post(Restart(child.name))
        return json_response({"result": "restarting", "name": child.name}, 202)

    async def drain(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        view = self.supervisor.snapshot()
        if view.stopping:
            return json_response({"result": "already stopping", "phase": view.phase.value}, 202)
        via = "the control socket" if self._on_socket(request) else "the HTTP port"
        self.supervisor.post(Drain(f"through {via}"))
        return json_response({"result": "draining", "grace_seconds": self.settings.grace_seconds}, 202)

    async def renew(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        if self.renewal is None or self.plan.tls.mode != "generate":
            return json_response({"error": f"TLS is {self.plan.tls.mode}: only generated certificates renew"}, 409)
        if self.renewal.busy or self.supervisor.snapshot().stopping:
            return json_response({"error": "a renewal is under way, or the service is stopping"}, 409)
        self.supervisor.log("certificate renewal requested through the API")
        self.renewal.start_now()
        return json_response({"result": "renewing"}, 202)


class _NotFound(Exception):
    pass
