"""A simulated Server's generation paths: dmi prefill with the hand-off to D, dmi decode with
its `/dresult` stream (§2.4-2.6), and standard mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from supervisor_pd.simulator import textgen
from supervisor_pd.simulator.httpd import HttpError, Request, Response, StreamResponse, json_response
from supervisor_pd.simulator.knobs import Knobs
from supervisor_pd.simulator.server import pd
from supervisor_pd.simulator.server.config import ServerConfig
from supervisor_pd.simulator.server.replies import error
from supervisor_pd.simulator.server.state import ServerState

if TYPE_CHECKING:
    from supervisor_pd.simulator.server.tlsstart import InterCommTls


class Inference:
    def __init__(
        self,
        config: ServerConfig,
        knobs: Knobs,
        state: ServerState,
        dispatcher: pd.DResultDispatcher,
        spawn: Callable[[Any], None],
        retries: int,
        intercomm: InterCommTls | None = None,
    ) -> None:
        self.config = config
        self.intercomm = intercomm
        self.knobs = knobs
        self.state = state
        self.dispatcher = dispatcher
        self.spawn = spawn
        self._retries_left = retries
        self._request_counter = 0

    async def generate(self, request: Request) -> Response | StreamResponse:
        if self.state.stopped:
            # SingleReqInferInterfaceBase::Process: a body that is not JSON is refused first.
            try:
                request.json()
            except HttpError:
                return error(422, "Failed to parse request context to json")
            return error(503, "The service has been stopped")
        if self.config.dmi:
            return await self._prefill(request)
        return await self._standard(request)

    def _parse(self, request: Request, request_id: str) -> textgen.Generation:
        try:
            return textgen.parse(
                request.path,
                request.json(),
                self.config.model_name,
                self.knobs.max_tokens,
                self.config.max_output_len,
                request_id,
            )
        except textgen.InvalidRequest as exc:
            raise HttpError(422, str(exc)) from None

    async def _prefill(self, request: Request) -> Response:
        state = self.state
        if state.role in ("none",) or state.role_status == "RoleUnknown":
            return error(503, "The PD role of this instance is unknown.")
        if state.role == "decode" or request.headers.get("req-type") != "prefill":
            return error(400, "this instance only accepts prefill requests from the Coordinator")
        request_id = request.headers.get("req-id", "")
        target = request.headers.get("d-target", "")
        if not request_id.isdigit() or not request_id.isascii() or len(request_id) > 1024 or not target:
            return error(400, "req-id and d-target headers are required")
        gen = self._parse(request, request_id)
        state.metrics.received += 1
        state.metrics.prompt_tokens += gen.prompt_tokens
        state.metrics.request_prompt.observe(gen.prompt_tokens)
        started = time.monotonic()
        async with state.slots.hold(state.blocks_for(gen.prompt_tokens)):
            await asyncio.sleep(self.knobs.ttft)
            done = gen.max_tokens <= 1
            if not done:
                message = {"op": "decode", "generation": gen.to_json(), "started": time.time()}
                try:
                    context = self._client_context()
                    reply = await pd.hand_off(target, self.config.inter_comm_port, message, ssl=context)
                except (OSError, ValueError, TimeoutError) as exc:
                    state.metrics.failed += 1
                    return error(500, f"hand-off to decode instance {target} failed: {exc}")
                if not reply.get("ok"):
                    state.metrics.failed += 1
                    return error(500, f"decode instance {target} refused the request: {reply.get('error')}")
        state.metrics.ttft.observe(time.monotonic() - started)
        state.metrics.generation_tokens += 1
        if done:
            state.metrics.success += 1
            output = (textgen.stream_end(gen) if gen.stream else textgen.full_body(gen)).decode()
        else:
            output = textgen.stream_piece(gen, 0).decode() if gen.stream else ""
        return json_response({"reqId": request_id, "isStream": gen.stream, "isLastResp": done, "output": output})

    def _client_context(self) -> Any:
        """P's SSL context for the link, or None when it is plain. Refused files are
        GrpcCommunicationMng::CreateDecodeRequestSender failing: this request fails (OSError)."""
        if self.intercomm is None:
            return None
        from supervisor_pd.simulator.tls import TlsError

        try:
            return self.intercomm.client()
        except TlsError as exc:
            raise OSError(f"{exc}; Failed to init client tls opt") from None

    async def accept_decode(self, message: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        if message.get("op") != "decode":
            return {"ok": False, "error": "unknown operation"}
        if state.role != "decode" or not state.model_loaded:
            return {"ok": False, "error": f"this instance is {state.role}/{state.role_status}, not a ready decode"}
        try:
            gen = textgen.Generation.from_json(message["generation"])
        except (KeyError, TypeError):
            return {"ok": False, "error": "malformed generation"}
        state.metrics.received += 1
        if self._retries_left > 0:
            self._retries_left -= 1
            self.dispatcher.emit(gen.request_id, "retry:", b'{"reason":"KV transfer failed (injected fault)"}')
            return {"ok": True}
        self.spawn(self._decode(gen))
        return {"ok": True}

    async def _decode(self, gen: textgen.Generation) -> None:
        state = self.state
        started = time.monotonic()
        try:
            async with state.slots.hold(state.blocks_for(gen.prompt_tokens + gen.max_tokens)):
                for index in range(1, gen.max_tokens - 1):
                    await asyncio.sleep(self.knobs.tpot)
                    state.metrics.tpot.observe(self.knobs.tpot)
                    if gen.stream:
                        self.dispatcher.emit(gen.request_id, "data:", textgen.stream_piece(gen, index))
                await asyncio.sleep(self.knobs.tpot)
                body = textgen.stream_end(gen) if gen.stream else textgen.full_body(gen)
                self.dispatcher.emit(gen.request_id, "lastData:", body)
        except asyncio.CancelledError:
            self.dispatcher.emit(gen.request_id, "error:", b'{"error":"the decode instance is stopping"}')
            raise
        state.metrics.success += 1
        state.metrics.generation_tokens += gen.max_tokens - 1
        state.metrics.request_generation.observe(gen.max_tokens)
        state.metrics.e2e.observe(time.monotonic() - started)

    async def dresult(self, request: Request) -> Response | StreamResponse:
        if not self.config.dmi or self.state.role != "decode":
            return error(400, "/dresult is served by decode instances only")
        return StreamResponse(chunks=self.dispatcher.stream(), content_type="text/event-stream")

    async def _standard(self, request: Request) -> Response | StreamResponse:
        state = self.state
        if not state.model_loaded:
            return error(503, "The model is not loaded yet.")
        self._request_counter += 1
        gen = self._parse(request, str(self._request_counter))
        state.metrics.received += 1
        state.metrics.prompt_tokens += gen.prompt_tokens
        if gen.stream:
            return StreamResponse(chunks=self._standard_stream(gen), content_type=textgen.content_type(gen))
        async with state.slots.hold(state.blocks_for(gen.prompt_tokens + gen.max_tokens)):
            await asyncio.sleep(self.knobs.ttft + self.knobs.tpot * (gen.max_tokens - 1))
        state.metrics.success += 1
        state.metrics.generation_tokens += gen.max_tokens
        return Response(body=textgen.full_body(gen))

    async def _standard_stream(self, gen: textgen.Generation) -> AsyncIterator[bytes]:
        state = self.state
        async with state.slots.hold(state.blocks_for(gen.prompt_tokens + gen.max_tokens)):
            await asyncio.sleep(self.knobs.ttft)
            for index in range(gen.max_tokens - 1):
                yield textgen.stream_piece(gen, index)
                await asyncio.sleep(self.knobs.tpot)
            yield textgen.stream_end(gen)
        state.metrics.success += 1
        state.metrics.generation_tokens += gen.max_tokens
