"""The prefill -> decode hand-off (reference §2.4-2.6).

P hands a request to the D named in `d-target` over D's inter-communication port: one JSON line
each way on a fresh TCP connection (a side channel standing in for MindIE's gRPC), in mutual TLS
when interCommTLSEnabled (server/tlsstart.py makes the contexts). D produces the remaining tokens
and frames them on its `/dresult` stream as `reqId:<id>\\0<prefix><body>\\0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl as ssl_module

HANDSHAKE_SECONDS = 10.0
SENTINEL_ID = "0xffffffffffffffff"
MAX_QUEUED_FRAMES = 200_000


# SendDResultKa (MindIE-LLM src/server/endpoint/http_wrapper/http_handler.cpp): one message, no reqId.
HEARTBEAT = b"ka:heartbeat\0"


def frame(request_id: str, prefix: str, body: bytes) -> bytes:
    return b"reqId:" + request_id.encode() + b"\0" + prefix.encode() + body + b"\0"


class DResultDispatcher:
    """Frames waiting for the Coordinator's `/dresult` connection; one connection at a time."""

    def __init__(self, keepalive: float) -> None:
        self.keepalive = keepalive
        self._frames: deque[bytes] = deque(maxlen=MAX_QUEUED_FRAMES)
        self._listeners: list[asyncio.Event] = []
        self._current: object | None = None

    @property
    def connected(self) -> bool:
        return self._current is not None

    def emit(self, request_id: str, prefix: str, body: bytes) -> None:
        self._frames.append(frame(request_id, prefix, body))
        self._wake()

    def _wake(self) -> None:
        for event in self._listeners:
            event.set()

    async def stream(self) -> AsyncIterator[bytes]:
        token = object()
        self._current = token
        self._wake()  # an older stream sees it was replaced and closes
        event = asyncio.Event()
        self._listeners.append(event)
        last = time.monotonic()
        try:
            while True:
                if self._current is not token:
                    yield frame(SENTINEL_ID, "close:", b"replaced by a newer /dresult connection")
                    return
                if self._frames:
                    batch = [self._frames.popleft() for _ in range(min(len(self._frames), 256))]
                    try:
                        yield b"".join(batch)
                    except GeneratorExit:
                        self._frames.extendleft(reversed(batch))
                        raise
                    last = time.monotonic()
                    continue
                event.clear()
                try:
                    await asyncio.wait_for(event.wait(), max(0.01, self.keepalive - (time.monotonic() - last)))
                except TimeoutError:
                    yield HEARTBEAT
                    last = time.monotonic()
        finally:
            self._listeners.remove(event)
            if self._current is token:
                self._current = None


HandOff = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_intercomm(
    host: str, port: int, handle: HandOff, ssl: ssl_module.SSLContext | None = None
) -> asyncio.Server:
    """D's side of the hand-off: one JSON request line, one JSON reply line; with `ssl`, only
    after a TLS handshake (a failed one is closed by asyncio and never reaches `handle`)."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 30)
            try:
                message = json.loads(line)
            except ValueError:
                reply: dict[str, Any] = {"ok": False, "error": "malformed hand-off"}
            else:
                reply = await handle(message)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(
        on_connect,
        host,
        port,
        reuse_address=True,
        ssl=ssl,
        ssl_handshake_timeout=HANDSHAKE_SECONDS if ssl is not None else None,
    )


async def hand_off(
    target: str,
    default_port: int,
    message: dict[str, Any],
    limit: float = 10.0,
    ssl: ssl_module.SSLContext | None = None,
) -> dict[str, Any]:
    """P's side: send `message` to `d-target` (`ip[;port]`) and return D's reply. With `ssl`, the
    connection is TLS and D's certificate is checked against D's IP (the context decides how)."""
    host, _, port_text = target.partition(";")
    port = int(port_text) if port_text.strip().isdigit() else default_port
    host = host.strip()
    secure = {"ssl": ssl, "server_hostname": host, "ssl_handshake_timeout": limit} if ssl is not None else {}
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, **secure), limit)
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), limit)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if not line:
        raise ConnectionError(f"decode instance at {target} closed the hand-off")
    return json.loads(line)
