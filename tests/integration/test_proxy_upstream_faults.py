"""The proxy when the Coordinator fails: a reply that breaks off never looks complete, and a
Coordinator that is being restarted costs new requests a short wait, not an error."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from supervisor_pd.api.metrics import ProxyMetrics
from supervisor_pd.api.proxy import Proxy
from supervisor_pd.api.server import errors
from supervisor_pd.plan.model import TlsLink, TlsPlan
from supervisor_pd.settings import load_settings

pytestmark = pytest.mark.anyio

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def upstream_handler(request: web.Request) -> web.StreamResponse:
    """Two events, then the connection dies (a killed Coordinator), or silence (a hung one)."""
    kind = request.headers.get("X-Test-Upstream", "sse")
    headers = {"Content-Type": "text/event-stream"} if kind != "chunked" else {"Content-Type": "application/json"}
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    await response.write(EVENT)
    await response.write(EVENT)
    if kind == "silent":
        await asyncio.sleep(30)
    assert request.transport is not None
    request.transport.abort()
    return response


async def fake_coordinator(handler: Any) -> tuple[web.AppRunner, int]:
    """A Coordinator stand-in answering every POST with `handler`, on a free loopback port."""
    upstream = web.Application()
    upstream.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(upstream, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def proxy_to(port: int, metrics: ProxyMetrics | None = None) -> tuple[Proxy, web.AppRunner, str]:
    """The proxy, as the supervisor serves it, in front of 127.0.0.1:`port`."""
    plan = SimpleNamespace(
        coordinator=SimpleNamespace(predict_ip="127.0.0.1", predict_port=port),
        model_name="m",
        max_seq_len=2048,
        tls=TlsPlan(
            mode="off",
            mode_source="test",
            links=(TlsLink(key="coordinator_predict", link="", encrypted=False, switches=()),),
        ),
    )
    metrics = metrics or ProxyMetrics(CollectorRegistry())
    proxy = Proxy(plan, load_settings(), metrics)  # type: ignore[arg-type]
    app = web.Application(middlewares=[errors])
    proxy.add_routes(app)
    await proxy.start()
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    own = free_port()
    await web.TCPSite(runner, "127.0.0.1", own).start()
    return proxy, runner, f"http://127.0.0.1:{own}"


@pytest.fixture
async def proxied(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, ProxyMetrics]]:
    monkeypatch.setenv("SUPERVISOR_PD_PROXY_READ_TIMEOUT", "0.5")
    up_runner, up_port = await fake_coordinator(upstream_handler)

    metrics = ProxyMetrics(CollectorRegistry())
    proxy, runner, url = await proxy_to(up_port, metrics)
    try:
        yield url, metrics
    finally:
        await proxy.close()
        await runner.cleanup()
        await up_runner.cleanup()


async def events(url: str, path: str, kind: str) -> list[bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(url + path, json={"stream": True}, headers={"X-Test-Upstream": kind}) as response,
    ):
        assert response.status == 200
        body = await response.read()
    return [part for part in body.split(b"\n\n") if part]


@pytest.mark.parametrize("kind", ["sse", "silent"])
async def test_a_broken_openai_stream_ends_with_an_error_event(proxied: tuple[str, ProxyMetrics], kind: str) -> None:
    url, metrics = proxied
    parts = await events(url, "/v1/chat/completions", kind)
    assert parts[:2] == [EVENT.strip(), EVENT.strip()]
    error = orjson.loads(parts[-1].removeprefix(b"data: "))["error"]
    assert error["type"] == "server_error"
    assert error["code"] == (502 if kind == "sse" else 504)
    assert metrics.cut.labels("/v1/chat/completions")._value.get() == 1


async def test_a_broken_mindie_stream_ends_with_a_mindie_error(proxied: tuple[str, ProxyMetrics]) -> None:
    url, _ = proxied
    parts = await events(url, "/infer", "sse")
    error = orjson.loads(parts[-1].removeprefix(b"data: "))
    assert error["error_type"] == "Bad Gateway" and "mid-way" in error["error"]


async def test_a_broken_plain_body_is_cut_short_not_ended(proxied: tuple[str, ProxyMetrics]) -> None:
    url, _ = proxied
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(url + "/infer", json={}, headers={"X-Test-Upstream": "chunked"}) as response,
    ):
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def answer(request: web.Request) -> web.Response:
    return web.json_response({"choices": [{"index": 0, "finish_reason": "stop"}]})


async def test_a_coordinator_coming_back_costs_a_wait_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISOR_PD_PROXY_CONNECT_TIMEOUT", "5")
    port = free_port()
    proxy, runner, url = await proxy_to(port)
    upstream = web.Application()
    upstream.router.add_post("/{tail:.*}", answer)
    up_runner = web.AppRunner(upstream, shutdown_timeout=0.1)
    await up_runner.setup()

    async def come_back() -> None:
        await asyncio.sleep(0.5)  # the restart under test: nothing listens for half a second
        await web.TCPSite(up_runner, "127.0.0.1", port).start()

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            back = asyncio.ensure_future(come_back())
            async with session.post(url + "/v1/chat/completions", json={}) as response:
                assert response.status == 200
                assert (await response.json())["choices"][0]["finish_reason"] == "stop"
            await back
    finally:
        await proxy.close()
        await runner.cleanup()
        await up_runner.cleanup()


async def test_a_coordinator_that_stays_away_is_a_502_after_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPERVISOR_PD_PROXY_CONNECT_TIMEOUT", "0.5")
    proxy, runner, url = await proxy_to(free_port())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            began = asyncio.get_running_loop().time()
            async with session.post(url + "/infer", json={}) as response:
                took = asyncio.get_running_loop().time() - began
                assert response.status == 502
                assert (await response.json())["error_type"] == "Bad Gateway"
        assert 0.3 <= took < 3, took
    finally:
        await proxy.close()
        await runner.cleanup()


async def test_requests_beyond_the_in_flight_cap_get_503_and_the_rest_go_on() -> None:
    # The HTTP port keeps descriptors for probes and control (api/connections.py): past its cap
    # of proxied requests a new one is refused at once, in the shape of its API.
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True})

    up_runner, up_port = await fake_coordinator(held)
    proxy, runner, url = await proxy_to(up_port)
    proxy.max_in_flight = 2
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def post(path: str) -> tuple[int, bytes, str | None]:
                async with session.post(url + path, json={"prompt": "x"}) as reply:
                    return reply.status, await reply.read(), reply.headers.get("Retry-After")

            first = [asyncio.create_task(post("/v1/completions")) for _ in range(2)]
            deadline = asyncio.get_running_loop().time() + 10
            while proxy.in_flight < 2:
                assert asyncio.get_running_loop().time() < deadline, "the two requests never got in flight"
                await asyncio.sleep(0.01)
            status, body, retry = await post("/v1/completions")
            assert (status, retry) == (503, "1")
            assert orjson.loads(body)["error"]["type"] == "server_error"
            status, body, _ = await post("/infer")
            assert status == 503 and "error_type" in orjson.loads(body)  # MindIE's shape on its paths
            release.set()
            assert [(await task)[0] for task in first] == [200, 200]
            assert (await post("/v1/completions"))[0] == 200  # room again
    finally:
        release.set()
        await proxy.close()
        await runner.cleanup()
        await up_runner.cleanup()


async def test_a_missing_model_is_filled_in_on_the_openai_paths_only() -> None:
    # MindIE's Server refuses an OpenAI request without `model` (422); the port names the one
    # model it serves. The simulated Server lets such a request through, so this is checked here.
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"ok": True})

    up_runner, up_port = await fake_coordinator(echo)
    proxy, runner, url = await proxy_to(up_port)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for path, body in [
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
                ("/v1/completions", {"prompt": "x", "model": None}),
                ("/v1/completions", {"prompt": "x", "model": "other"}),
                ("/infer", {"inputs": "x"}),
            ]:
                async with session.post(url + path, json=body) as reply:
                    assert reply.status == 200
        assert [body.get("model", "absent") for body in seen] == ["m", "m", "other", "absent"]
    finally:
        await proxy.close()
        await runner.cleanup()
        await up_runner.cleanup()
