"""The pod's gauges read every Server's /v1/status at once, each within a short bound, over HTTP
(api/podgauges.py read_loads, api/statusclient.py).

Fake Servers on loopback answer as MindIE-LLM's management port does (cpp-httplib: a
Content-Length body, keep-alive until the server closes the connection), or fail in the ways a
real one can: an error status, a body that is not JSON, no answer in time, nobody listening, a
connection closed while idle.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from supervisor_pd.api.podgauges import ServerLoad, StatusTarget, read_loads
from supervisor_pd.api.statusclient import StatusClient
from tests.factories import mindie_status as status
from tests.simstack import free_base

pytestmark = pytest.mark.anyio

Reply = Callable[[int], Awaitable[bytes | None]]  # the nth request (from 1) -> reply bytes, None: close


def reply(code: int, body: bytes, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    head = b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (code, len(body), extra)
    return head + body


class FakeServer:
    """A management port: answers GETs on kept-alive connections as `answer` says; counts them."""

    def __init__(self, answer: Reply) -> None:
        self.answer = answer
        self.port = free_base(1)
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FakeServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                data = await self.answer(self.requests)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
                if b"Connection: close" in data:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went, or the test is over (asyncio logs a handler that ends cancelled)
        finally:
            writer.close()

    def target(self, name: str = "server-1") -> StatusTarget:
        return StatusTarget(name, "127.0.0.1", self.port, False, "decode")


OK = reply(200, json.dumps(status("prefill", waitingRequestNum=3, runningRequestNum=1)).encode())
LOAD = ServerLoad("prefill", 3, 1, 700, 1024)


async def answer_ok(_: int) -> bytes:
    return OK


@pytest.fixture
async def client() -> AsyncIterator[StatusClient]:
    made = StatusClient(None)
    try:
        yield made
    finally:
        made.close()


async def test_only_the_answers_that_come_in_time_count_and_the_read_is_bounded(client: StatusClient) -> None:
    async def unavailable(_: int) -> bytes:
        return reply(503, b"")  # the daemon not started, or stopped (http_handler.cpp:1010-1019)

    async def garbage(_: int) -> bytes:
        return reply(200, b"{not json")

    async def chunked(_: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"

    async def silent(_: int) -> bytes:
        await asyncio.sleep(30)
        return OK

    servers = [FakeServer(answer) for answer in (answer_ok, unavailable, garbage, chunked, silent)]
    async with servers[0], servers[1], servers[2], servers[3], servers[4]:
        found = [server.target(f"server-{i}") for i, server in enumerate(servers, 1)]
        found.append(StatusTarget("refused", "127.0.0.1", free_base(1), False, None))
        began = time.monotonic()
        loads = await read_loads(client, found, seconds=0.3)
        took = time.monotonic() - began
    assert loads == [LOAD]
    # Asked at once: the silent one costs its bound once, not once more per other Server.
    assert 0.3 <= took < 2.0


async def test_one_connection_is_kept_and_a_new_one_made_when_the_server_closed_it(client: StatusClient) -> None:
    async def every_third_closes(n: int) -> bytes | None:
        return None if n % 3 == 0 else OK  # closed with no reply, as a server's idle close races a request

    async def closes_after_reply(_: int) -> bytes:
        return reply(200, OK.split(b"\r\n\r\n", 1)[1], close=True)

    async with (
        FakeServer(answer_ok) as kept,
        FakeServer(every_third_closes) as idle,
        FakeServer(closes_after_reply) as one,
    ):
        for _ in range(5):
            loads = await read_loads(client, [kept.target(), idle.target(), one.target()], seconds=1.0)
            assert loads == [LOAD] * 3
    assert (kept.connections, kept.requests) == (1, 5)
    assert idle.connections == 3  # each close cost one retry on a new connection, never an answer
    assert one.connections == 5


async def test_a_late_reply_never_answers_the_next_read(client: StatusClient) -> None:
    # On a new connection and on one kept from an earlier read.
    await late_reply_on_a_new_connection(client)
    await late_reply_on_a_kept_connection(client)


async def late_reply_on_a_new_connection(client: StatusClient) -> None:
    late = reply(200, json.dumps(status("decode", runningRequestNum=99)).encode())

    async def slow_first(n: int) -> bytes:
        if n == 1:
            await asyncio.sleep(0.5)
            return late
        return OK

    async with FakeServer(slow_first) as server:
        assert await read_loads(client, [server.target()], seconds=0.2) == []
        assert await read_loads(client, [server.target()], seconds=1.0) == [LOAD]


async def late_reply_on_a_kept_connection(client: StatusClient) -> None:
    late = reply(200, json.dumps(status("decode", runningRequestNum=99)).encode())

    async def slow_second(n: int) -> bytes:
        if n == 2:
            await asyncio.sleep(0.5)
            return late
        return OK

    async with FakeServer(slow_second) as server:
        assert await read_loads(client, [server.target()], seconds=1.0) == [LOAD]  # the connection is made
        assert await read_loads(client, [server.target()], seconds=0.2) == []
        # Asked again before the late reply is in: on the old connection it would answer this.
        assert await read_loads(client, [server.target()], seconds=1.0) == [LOAD]


async def test_a_scrape_cancelled_midway_leaves_no_reply_for_the_next(client: StatusClient) -> None:
    late = reply(200, json.dumps(status("decode", runningRequestNum=99)).encode())
    asked = asyncio.Event()

    async def slow_second(n: int) -> bytes:
        if n == 2:
            asked.set()
            await asyncio.sleep(0.3)  # the reply is late: it comes after the scrape is cancelled
            return late
        return OK

    async with FakeServer(slow_second) as server:
        assert await read_loads(client, [server.target()], seconds=1.0) == [LOAD]  # the connection is made
        first = asyncio.ensure_future(read_loads(client, [server.target()], seconds=5.0))
        await asyncio.wait_for(asked.wait(), 5.0)  # the request is out, its reply not yet
        first.cancel()  # the scrape's client went away
        with pytest.raises(asyncio.CancelledError):
            await first
        # Asked again before the late reply is in: on the old connection it would answer this.
        assert await read_loads(client, [server.target()], seconds=1.0) == [LOAD]
