"""A lean HTTP/1.1 GET over kept-alive connections, for the Servers' /v1/status at every scrape.

The pod's gauges ask every Server at every scrape of /metrics, and an endpoint picker scrapes
every 50 ms. This client sends every request of a scrape at once, on connections kept from one
scrape to the next, and waits for the replies together: 16 Servers answering at once cost under
1 ms p99 of the event loop (BENCHMARKS.md, "The pod's gauges"), where aiohttp's client took about
3.6 ms on the same machine. It knows only what MindIE's management port answers (cpp-httplib: a Content-Length
body, keep-alive until the server closes), and gives up on anything else: a failed read is only a
Server left out of one scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*(?:\r\n|$)")
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close[ \t]*(?:\r\n|$)")

Reply = tuple[int, bytes]  # status, body


class HttpFailure(Exception):
    pass


@dataclass(frozen=True)
class Ask:
    host: str
    port: int
    target: str  # the path
    tls: bool = False


class _Link(asyncio.Protocol):
    """One connection; one request at a time, its reply parsed as the bytes come."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.reply: asyncio.Future[Reply] | None = None
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

    def _parse(self) -> Reply | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise HttpFailure("no end to the reply's head")
            return None
        head = bytes(self.buffer[:end]).lower()
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"http/1.") or not parts[1][:3].isdigit():
            raise HttpFailure("not an HTTP/1.x reply")
        if b"\r\ntransfer-encoding:" in head:
            raise HttpFailure("a chunked reply")
        length = _LENGTH.search(head)
        if length is None or int(length[1]) > MAX_BODY:
            raise HttpFailure("no usable Content-Length")
        stop = end + 4 + int(length[1])
        if len(self.buffer) < stop:
            return None
        body = bytes(self.buffer[end + 4 : stop])
        del self.buffer[:stop]
        if _CLOSE.search(head):
            self.close()
        return int(parts[1][:3]), body

    def _fail(self, exc: Exception) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)

    def send(self, host: str, target: str) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.reply = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        name = f"[{host}]" if ":" in host else host
        self.transport.write(f"GET {target} HTTP/1.1\r\nHost: {name}\r\nAccept: application/json\r\n\r\n".encode())
        return self.reply

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class StatusClient:
    """GETs on kept-alive connections, one per host and port, reused from scrape to scrape.
    One `get_all` at a time."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        self.links: dict[Ask, _Link] = {}

    async def get_all(self, asks: Sequence[Ask], seconds: float) -> list[Reply | None]:
        """Every ask's reply, None for one that failed or was not in within `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        replies: list[Reply | None] = [None] * len(asks)
        waiting: dict[asyncio.Future[Reply], tuple[int, _Link | None]] = {}
        for index, ask in enumerate(asks):
            link = self.links.get(ask)
            if link is not None and not link.closed:
                waiting[link.send(ask.host, ask.target)] = (index, link)
            else:
                waiting[asyncio.ensure_future(self._anew(ask))] = (index, None)
        for _ in range(2):
            if not waiting:
                break
            try:
                done, late = await asyncio.wait(waiting, timeout=max(0.0, deadline - loop.time()))
            except asyncio.CancelledError:
                self._give_up(waiting)
                raise
            again: dict[asyncio.Future[Reply], tuple[int, _Link | None]] = {}
            self._give_up({future: waiting[future] for future in late})
            for future in done:
                index, link = waiting[future]
                failure = future.exception()
                if failure is None:
                    replies[index] = future.result()
                elif isinstance(failure, HttpFailure) and link is not None and link.used:
                    # The server may have closed it while idle, as our request went out: once more, anew.
                    again[asyncio.ensure_future(self._anew(asks[index]))] = (index, None)
            waiting = again
        for future in waiting:
            future.cancel()
        return replies

    @staticmethod
    def _give_up(waiting: dict[asyncio.Future[Reply], tuple[int, _Link | None]]) -> None:
        for future, (_, link) in waiting.items():
            future.cancel()
            if link is not None:
                link.close()  # its reply may still come: it must not answer the next request

    async def _anew(self, ask: Ask) -> Reply:
        loop = asyncio.get_running_loop()
        context = (self.context or ssl.create_default_context()) if ask.tls else None  # the plan's, with TLS on
        _, link = await loop.create_connection(_Link, ask.host, ask.port, ssl=context)
        try:
            answer = await link.send(ask.host, ask.target)
        except BaseException:
            link.close()  # cancelled (out of time) or failed: a late reply must not answer the next request
            raise
        # Kept only once it has answered: a cancelled task closes its link later than the next scrape may start.
        self.links[ask] = link
        return answer

    def close(self) -> None:
        for link in self.links.values():
            with contextlib.suppress(Exception):
                link.close()
        self.links.clear()
