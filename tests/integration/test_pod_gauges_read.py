"""The pod's gauges read every Server's /v1/status at once, each within a short bound, over HTTP.

Fake Servers on loopback answer as MindIE-LLM's management port does, or fail in the ways a real
one can: an error status, a body that is not JSON, no answer in time, nobody listening.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from supervisor_pd.api.podgauges import ServerLoad, StatusTarget, read_loads
from tests.simstack import free_base
from tests.unit.api.test_podgauges import status

pytestmark = pytest.mark.anyio


async def ok(request: web.Request) -> web.Response:
    return web.json_response(status("prefill", waitingRequestNum=3, runningRequestNum=1))


async def unavailable(request: web.Request) -> web.Response:
    return web.Response(status=503)  # the daemon not started, or stopped (http_handler.cpp:1010-1019)


async def garbage(request: web.Request) -> web.Response:
    return web.Response(body=b"{not json", content_type="application/json")


async def silent(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, str]]:
    app = web.Application()
    for path, handler in (("/ok", ok), ("/unavailable", unavailable), ("/garbage", garbage), ("/silent", silent)):
        app.router.add_get(path + "/v1/status", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port, closed = free_base(1), free_base(1)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        yield {
            "ok": f"{base}/ok/v1/status",
            "unavailable": f"{base}/unavailable/v1/status",
            "garbage": f"{base}/garbage/v1/status",
            "silent": f"{base}/silent/v1/status",
            "refused": f"http://127.0.0.1:{closed}/v1/status",
        }
    finally:
        await runner.cleanup()


async def test_only_the_answers_that_come_in_time_count_and_the_read_is_bounded(servers: dict[str, str]) -> None:
    found = [StatusTarget(name, url, "decode") for name, url in servers.items()]
    async with aiohttp.ClientSession() as session:
        began = time.monotonic()
        loads = await read_loads(session, found, seconds=0.3)
        took = time.monotonic() - began
    assert loads == [ServerLoad("prefill", 3, 1, 700, 1024)]
    # Asked at once: the silent one costs its bound once, not once more per other Server.
    assert 0.3 <= took < 2.0
