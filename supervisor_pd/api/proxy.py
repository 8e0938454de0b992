"""The inference API: every inference path of the Coordinator's predict port, proxied.

One shared upstream session with no connection cap; replies are relayed byte for byte as they
arrive (SSE included, never buffered, `X-Accel-Buffering: no` for any nginx in front). A client
that goes away cancels its upstream request (the handler is cancelled). Each request carries an
`X-Request-Id`, taken from the client or made here, to the Coordinator and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from supervisor_pd.api.errors import as_openai_error, mindie_error, openai_error
from supervisor_pd.api.metrics import ProxyMetrics
from supervisor_pd.api.requests import DuplicateKey, parse_body, shown, unsupported
from supervisor_pd.api.sse import token_events
from supervisor_pd.plan.model import Plan
from supervisor_pd.runtime.tlsclient import client_context
from supervisor_pd.settings import Settings

# Between connection attempts while the Coordinator refuses them (it is being restarted).
RECONNECT_DELAY = 0.1
PREDICT_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/infer",
    "/infer_token",
    "/",
    "/generate",
    "/generate_stream",
    "/v1/tokenizer",
)
TRITON_SUFFIXES = ("infer", "generate", "generate_stream")
OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
RETRY_AFTER = "5"
# Longest a request waits while a process restarts for a certificate renewal.
HOLD_SECONDS = 120.0


class Proxy:
    def __init__(self, plan: Plan, settings: Settings, metrics: ProxyMetrics) -> None:
        coordinator = plan.coordinator
        scheme = "https" if plan.tls.on("coordinator_predict") else "http"
        self.base = f"{scheme}://{coordinator.predict_ip}:{coordinator.predict_port}"
        self.plan = plan
        self.settings = settings
        self.metrics = metrics
        self.draining = False
        self.in_flight = 0
        # Set by the HTTP port from its connection budget (api/connections.py); None: no cap.
        self.max_in_flight: int | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        # Cleared while a process restarts to take a renewed certificate (api/renewal.py): new
        # requests wait here, bounded, instead of meeting a process that is not there.
        self.open = asyncio.Event()
        self.open.set()
        self.created = int(time.time())
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.proxy_connect_timeout, sock_read=self.settings.proxy_read_timeout
        )
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, keepalive_timeout=60, ssl=client_context(self.plan.tls) or True
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False, read_bufsize=1 << 20
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def add_routes(self, app: web.Application) -> None:
        paths = [*PREDICT_PATHS, *("/v2/models/{model}/" + suffix for suffix in TRITON_SUFFIXES)]
        for path in paths:
            app.router.add_post(path, self.forward)
        self.metrics.known_paths(paths)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model:.+}", self.model)

    # --- /v1/models: the Coordinator has none, and OpenAI clients ask first -------------------

    def _card(self) -> dict[str, Any]:
        name = self.plan.model_name
        return {
            "id": name,
            "object": "model",
            "created": self.created,
            "owned_by": "MindIE Server",
            "root": name,
            "parent": None,
            "max_model_len": self.plan.max_seq_len,
        }

    async def models(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"object": "list", "data": [self._card()]}), content_type="application/json"
        )

    async def model(self, request: web.Request) -> web.Response:
        if request.match_info["model"] != self.plan.model_name:
            return openai_error(404, "The model does not exist.", "model", "model_not_found")
        return web.Response(body=orjson.dumps(self._card()), content_type="application/json")

    # --- the inference paths ---------------------------------------------------------------

    async def forward(self, request: web.Request) -> web.StreamResponse:
        openai = request.path in OPENAI_PATHS
        if self.draining:
            # Take the body first: closing the connection while the client still sends it would
            # hide the 503 from the client behind a write error.
            with contextlib.suppress(web.HTTPException, ConnectionError):
                await request.read()
            response = (openai_error if openai else mindie_error)(503, "The service is shutting down; retry later.")
            response.headers["Retry-After"] = RETRY_AFTER
            return response
        body = await request.read()
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            # The port's descriptors are for probes and control now (api/connections.py).
            response = (openai_error if openai else mindie_error)(
                503, "Too many requests in flight on this port; retry later."
            )
            response.headers["Retry-After"] = "1"
            return response
        if self.settings.check_pd_params and request.path != "/v1/tokenizer":
            try:
                parsed = parse_body(body) if body else None
            except DuplicateKey as exc:
                message = f"`{shown(exc.key)}` is given more than once in the request body."
                return (openai_error if openai else mindie_error)(400, message)
            except ValueError:
                return (openai_error if openai else mindie_error)(400, "The request body is not valid JSON.")
            param = unsupported(parsed)
            if openai and isinstance(parsed, dict) and parsed.get("model") is None:
                # MindIE's Server refuses an OpenAI request without `model` (422); OpenAI-compatible
                # servers take the one they serve. So does this port: there is only one.
                parsed["model"] = self.plan.model_name
                body = orjson.dumps(parsed)
            if param is not None:
                message = f"`{param}` is not supported with prefill/decode disaggregation."
                return (
                    openai_error(400, message, param, "unsupported_parameter") if openai else mindie_error(400, message)
                )
        if not self.open.is_set():
            try:
                await asyncio.wait_for(self.open.wait(), HOLD_SECONDS)
            except TimeoutError:
                response = (openai_error if openai else mindie_error)(
                    503, "The service is restarting a process to renew its certificate; retry later."
                )
                response.headers["Retry-After"] = RETRY_AFTER
                return response
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Request-Id"] = request_id
        path = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
        return await self._relay(request, body, headers, request_id, path)

    async def _relay(
        self, request: web.Request, body: bytes, headers: dict[str, str], request_id: str, path: str
    ) -> web.StreamResponse:
        assert self._session is not None
        metrics = self.metrics
        began = time.perf_counter()
        status = 502
        self.in_flight += 1
        self.idle.clear()
        metrics.in_flight.inc()
        response: web.StreamResponse | None = None
        try:
            async with await self._connect(request, body, headers, began) as upstream:
                status = upstream.status
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                out["X-Request-Id"] = request_id
                content_type = upstream.headers.get("Content-Type", "")
                if upstream.content_length is not None and "event-stream" not in content_type:
                    data = await upstream.read()
                    if status < 400:
                        # A reply not streamed brings its first token with the rest.
                        metrics.ttft.labels(path).observe(time.perf_counter() - began)
                    if status >= 400 and request.path in OPENAI_PATHS:
                        return as_openai_error(status, data, out)
                    return web.Response(status=status, body=data, headers=out)
                out["X-Accel-Buffering"] = "no"
                out.setdefault("Cache-Control", "no-cache")
                response = web.StreamResponse(status=status, headers=out)
                await response.prepare(request)
                metrics.streams.inc()
                try:
                    await self._stream(upstream, response, path, began)
                finally:
                    metrics.streams.dec()
                return response
        except aiohttp.ClientConnectorError:
            status = 502
            return mindie_error(502, f"The Coordinator at {self.base} is not reachable.", "Bad Gateway")
        except TimeoutError:
            if response is not None:
                return await self._cut(request, response, path, 504, "The Coordinator went silent mid-reply.")
            status = 504
            return mindie_error(504, "The Coordinator did not answer in time.", "Gateway Timeout")
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if response is not None:
                return await self._cut(request, response, path, 502, "The Coordinator closed the reply mid-way.")
            status = 502
            return mindie_error(502, "The Coordinator closed the connection.", "Bad Gateway")
        except ConnectionResetError:
            # The client went away while we wrote to it (its task was not cancelled, e.g. during
            # a drain): leaving the upstream context above has already cancelled its request.
            if response is None:
                raise
            return response
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()
            metrics.in_flight.dec()
            metrics.requests.labels(path, str(status)).inc()
            metrics.duration.labels(path).observe(time.perf_counter() - began)

    async def _connect(
        self, request: web.Request, body: bytes, headers: dict[str, str], began: float
    ) -> aiohttp.ClientResponse:
        """Send the request, trying again while the Coordinator refuses connections, up to the
        connect timeout: a refused connection means the request never reached it, so sending it
        again is safe, and a Coordinator that is being restarted is back within a second or two."""
        assert self._session is not None
        deadline = began + self.settings.proxy_connect_timeout
        while True:
            try:
                return await self._session.post(self.base + request.path_qs, data=body, headers=headers)
            except aiohttp.ClientConnectorError:
                if self.draining or time.perf_counter() + RECONNECT_DELAY > deadline:
                    raise
                await asyncio.sleep(RECONNECT_DELAY)

    async def _cut(
        self, request: web.Request, response: web.StreamResponse, path: str, code: int, message: str
    ) -> web.StreamResponse:
        """A reply that broke off upstream must not look complete to the client: an event stream
        ends with an error event (the form MindIE's Coordinator uses for its own mid-stream
        errors); any other body is cut short, so the client's HTTP library reports it."""
        self.metrics.cut.labels(path).inc()
        if "event-stream" in response.headers.get("Content-Type", ""):
            if request.path in OPENAI_PATHS:
                error: dict[str, object] = {"message": message, "type": "server_error", "param": None, "code": code}
                event = {"error": error}
            else:
                event = {"error": message, "error_type": "Bad Gateway" if code == 502 else "Gateway Timeout"}
            with contextlib.suppress(ConnectionError):
                await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
                await response.write_eof()
        elif request.transport is not None:
            request.transport.abort()
        return response

    async def _stream(
        self, upstream: aiohttp.ClientResponse, response: web.StreamResponse, path: str, began: float
    ) -> None:
        """Relay the reply chunk by chunk as it arrives, timing its tokens by the events in it
        (api/sse.py), not by the chunks: a read that completes k token events counts k tokens.

        TTFT: the request's arrival to the read that completes the first token event. TPOT: for
        each later token event, the time from the previous read that completed token events to
        the read that completes this one, divided by the number of token events that read
        completed (events that came in the read of the first token count 0). So TPOT's sum is
        the time from the first token to the last and its count is tokens - 1, as a client sees
        them. A stream of a form with no events to count (neither SSE nor vLLM's) gets a TTFT at
        its first bytes and no TPOT; a failed reply (status 400 or more) gets neither."""
        timed = upstream.status < 400
        events = token_events(upstream.headers.get("Content-Type", ""))
        ttft = self.metrics.ttft.labels(path)
        tpot = self.metrics.tpot.labels(path)
        last: float | None = None
        async for chunk in upstream.content.iter_any():
            if timed:
                tokens = events.feed(chunk) if events is not None else int(last is None)
                if tokens:
                    now = time.perf_counter()
                    if last is None:
                        ttft.observe(now - began)
                        share = 0.0
                        tokens -= 1
                    else:
                        share = (now - last) / tokens
                    for _ in range(tokens):
                        tpot.observe(share)
                    last = now
            await response.write(chunk)
        await response.write_eof()

    async def drain(self, deadline: float) -> None:
        """Refuse new requests (503 + Retry-After) and wait for those in flight."""
        self.draining = True
        await self.idle.wait()
