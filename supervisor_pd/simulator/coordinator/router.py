"""The Coordinator's predict port: route each request P -> D (reference §4.2, §4.4)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from supervisor_pd.simulator import textgen
from supervisor_pd.simulator.coordinator.instances import Instance

if TYPE_CHECKING:
    from supervisor_pd.simulator.coordinator.main import Coordinator

NOT_READY = "MindIE-MS Coordinator is not ready\r\n"
CONNECT_RETRIES = 4


class Failure(Exception):
    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(body.decode(errors="replace"))
        self.status = status
        self.body = body
        self.content_type = content_type


def _error(status: int, message: str) -> Failure:
    return Failure(status, json.dumps({"error": message, "error_type": "Coordinator"}).encode())


def wants_stream(path: str, body: Any) -> bool:
    if path.endswith("generate_stream"):
        return True
    if path.startswith("/v2/models/"):
        return False
    return isinstance(body, dict) and bool(body.get("stream", False))


class Router:
    def __init__(self, coordinator: Coordinator, session: aiohttp.ClientSession) -> None:
        self.coordinator = coordinator
        self.session = session

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.coordinator.settings.body_limit)
        for path in textgen.GENERATION_PATHS:
            app.router.add_post(path, self.predict)
        for suffix in ("generate_stream", "infer", "generate"):
            app.router.add_post("/v2/models/{model}/" + suffix, self.predict)
        app.router.add_post("/v1/tokenizer", self.tokenizer)
        return app

    def _choose(self) -> tuple[Instance, Instance]:
        prefill, decode = self.coordinator.routable()
        limit = self.coordinator.settings.single_node_max_requests
        decode_ids = {d.id: d for d in decode}
        options = []
        for p in prefill:
            peers = [decode_ids[i] for i in p.peers if i in decode_ids and decode_ids[i].outstanding < limit]
            if peers and p.outstanding < limit:
                options.append((p, min(peers, key=lambda d: (d.outstanding, d.id))))
        if not options:
            raise Failure(429, b"Too many requests", "text/plain")
        return min(options, key=lambda pair: (pair[0].outstanding, pair[0].id))

    async def tokenizer(self, request: web.Request) -> web.StreamResponse:
        prefill, _ = self.coordinator.routable()
        if not self.coordinator.ready:
            return web.Response(status=503, text=NOT_READY)
        target = min(prefill, key=lambda i: i.outstanding)
        body = await request.read()
        business = self.coordinator.business  # mindie_client (TokenizerRepeater)
        url = business.url(target.ip, target.port, "/v1/tokenizer")
        async with self.session.post(url, data=body, **business.options) as response:
            return web.Response(status=response.status, body=await response.read(), content_type="application/json")

    async def predict(self, request: web.Request) -> web.StreamResponse:
        coordinator = self.coordinator
        if not coordinator.ready:
            return web.Response(status=503, text=NOT_READY)
        if coordinator.inflight >= coordinator.settings.max_requests:
            return web.Response(status=429, text="Too many requests")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            return web.json_response(
                {"error": "request body is not valid JSON", "error_type": "Bad Request"}, status=400
            )
        stream = wants_stream(request.path, body)
        coordinator.inflight += 1
        try:
            prefill, decode = self._choose()
            return await self._route(request, raw, stream, prefill, decode)
        except Failure as failure:
            return web.Response(status=failure.status, body=failure.body, content_type=failure.content_type)
        finally:
            coordinator.inflight -= 1

    async def _route(
        self, request: web.Request, raw: bytes, stream: bool, prefill: Instance, decode: Instance
    ) -> web.StreamResponse:
        coordinator = self.coordinator
        request_id = coordinator.next_id()
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        coordinator.waiters[request_id] = queue
        for instance in (prefill, decode):
            instance.outstanding += 1
            instance.tasks.add(request_id)
        response: web.StreamResponse | None = None
        try:
            for attempt in range(coordinator.settings.max_retry + 1):
                try:
                    first = await self._prefill(request, raw, request_id, prefill, decode, recompute=attempt > 0)
                except Failure as failure:
                    if response is None:
                        raise
                    await response.write(b"data: " + failure.body + b"\n\n")
                    await response.write_eof()
                    return response
                if stream and response is None:
                    response = web.StreamResponse(
                        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                    )
                    await response.prepare(request)
                output = str(first.get("output", "")).encode()
                if first.get("isLastResp"):
                    return await self._finish(request, response, output)
                if response is not None and output:
                    await response.write(output)
                outcome = await self._relay(queue, response)
                if outcome[0] == "retry":
                    continue
                if outcome[0] == "error":
                    if response is not None:
                        await response.write(b"data: " + outcome[1] + b"\n\n")
                        await response.write_eof()
                        return response
                    raise Failure(500, outcome[1])
                return await self._finish(request, response, outcome[1])
            raise _error(500, "the request was retried too many times")
        finally:
            coordinator.waiters.pop(request_id, None)
            for instance in (prefill, decode):
                instance.outstanding -= 1
                instance.tasks.discard(request_id)

    async def _finish(
        self, request: web.Request, response: web.StreamResponse | None, last: bytes
    ) -> web.StreamResponse:
        if response is None:
            return web.Response(body=last, content_type="application/json")
        if last:
            await response.write(last)
        await response.write_eof()
        return response

    async def _prefill(
        self,
        request: web.Request,
        raw: bytes,
        request_id: str,
        prefill: Instance,
        decode: Instance,
        *,
        recompute: bool,
    ) -> dict[str, Any]:
        headers = {
            "Content-Type": request.headers.get("Content-Type", "application/json"),
            "req-type": "prefill",
            "req-id": request_id,
            "d-target": f"{decode.ip};{decode.inter_comm_port}",
            "d-port": str(decode.port),
        }
        if recompute:
            headers["is-recompute"] = "true"
        business = self.coordinator.business  # mindie_client
        url = business.url(prefill.ip, prefill.port, request.path_qs)
        timeout = aiohttp.ClientTimeout(total=self.coordinator.settings.first_token_timeout)
        for attempt in range(CONNECT_RETRIES):
            try:
                async with self.session.post(
                    url, data=raw, headers=headers, timeout=timeout, **business.options
                ) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise Failure(response.status, body, response.content_type or "application/json")
                    return json.loads(body)
            except aiohttp.ClientConnectionError:
                if attempt + 1 == CONNECT_RETRIES:
                    raise _error(502, f"cannot reach prefill instance {prefill.id}") from None
                await asyncio.sleep(0.1)
            except (TimeoutError, ValueError):
                raise _error(504, f"prefill instance {prefill.id} gave no usable answer") from None
        raise _error(502, "unreachable")

    async def _relay(
        self, queue: asyncio.Queue[tuple[str, bytes]], response: web.StreamResponse | None
    ) -> tuple[str, bytes]:
        """Forward data frames until the last one; returns (kind, body) of the frame that ended it."""
        timeout = self.coordinator.settings.infer_timeout
        while True:
            try:
                kind, body = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                return "error", b'{"error":"inference timed out"}'
            if kind == "data":
                if response is not None:
                    await response.write(body)
                continue
            return kind, body
