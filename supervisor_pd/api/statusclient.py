"""A lean HTTP/1.1 GET over kept-alive connections, for the Servers' /v1/status at every scrape.

The pod's gauges ask every Server at every scrape of /metrics, and an endpoint picker scrapes
every 50 ms: aiohttp's client spends about 180 µs of the event loop per request, this one about a
third of that (bench/pod_gauges_bench.py). It knows only what MindIE's management port answers
(cpp-httplib: a Content-Length body, keep-alive until the server closes), and gives up on
anything else; a failed read is only a Server left out of one scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024


class HttpFailure(Exception):
    pass


class _Link(asyncio.Protocol):
    """One connection; one request at a time, its reply parsed as the bytes come."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.reply: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.used = False  # a reply came on it: a failure next may be the server's idle close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpFailure("the connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.reply is None or self.reply.done():
            return
        try:
            parsed = self._parse()
        except HttpFailure as exc:
            self._fail(exc)
            self.close()
            return
        if parsed is not None:
            self.used = True
            self.reply.set_result(parsed)

    def _parse(self) -> tuple[int, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise HttpFailure("no end to the reply's head")
            return None
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpFailure("not an HTTP/1.x reply")
        length: int | None = None
        keep = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length" and value.strip().isdigit():
                length = int(value)
            elif name == b"transfer-encoding":
                raise HttpFailure("a chunked reply")
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length is None or length > MAX_BODY:
            raise HttpFailure("no usable Content-Length")
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        if not keep:
            self.close()
        return int(parts[1]), body

    def _fail(self, exc: Exception) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)

    async def get(self, host: str, target: str) -> tuple[int, bytes]:
        assert self.transport is not None
        self.reply = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        name = f"[{host}]" if ":" in host else host
        self.transport.write(f"GET {target} HTTP/1.1\r\nHost: {name}\r\nAccept: application/json\r\n\r\n".encode())
        try:
            return await self.reply
        except BaseException:
            # Cancelled (the caller's time is up) or failed: a late reply must not answer the next request.
            self.close()
            raise

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class StatusClient:
    """GET on kept-alive connections, one per host and port, reused from scrape to scrape."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        self.links: dict[tuple[str, int, bool], _Link] = {}

    async def get(self, host: str, port: int, target: str, tls: bool = False) -> tuple[int, bytes]:
        """(status, body). Raises HttpFailure or OSError; the caller bounds the time."""
        key = (host, port, tls)
        link = self.links.get(key)
        if link is not None and not link.closed:
            try:
                return await link.get(host, target)
            except HttpFailure:
                if not link.used:
                    raise
                # The server may have closed it while idle, as our request went out: once more, anew.
        link = await self._connect(host, port, tls)
        self.links[key] = link
        return await link.get(host, target)

    async def _connect(self, host: str, port: int, tls: bool) -> _Link:
        loop = asyncio.get_running_loop()
        context = (self.context or ssl.create_default_context()) if tls else None  # the plan's, when TLS is on
        _, link = await loop.create_connection(_Link, host, port, ssl=context)
        return link

    def close(self) -> None:
        for link in self.links.values():
            with contextlib.suppress(Exception):
                link.close()
        self.links.clear()
