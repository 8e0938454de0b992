"""TTFT and TPOT at the proxy are timed by the token events of a stream, not by its TCP chunks.

A fake Coordinator writes a stream whose chunks and events do not line up: two events in one
write, one event split over two writes, a comment and `[DONE]` in writes of their own, with
sleeps between them. The proxy must count exactly the token events and share the time between
chunks among the events they complete (supervisor_pd/api/proxy.py `Proxy._stream`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from supervisor_pd.api.metrics import ProxyMetrics
from tests.integration.test_proxy_upstream_faults import fake_coordinator, proxy_to

pytestmark = pytest.mark.anyio

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n'
PATH = "/v1/chat/completions"
GAP = 0.05


async def coalesced(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(EVENT)  # token 1: TTFT
    await asyncio.sleep(GAP)
    await response.write(EVENT * 2)  # tokens 2 and 3 in one write: each gets half the gap
    await asyncio.sleep(GAP)
    await response.write(EVENT[:20])  # token 4 split over two writes: counted once, when complete
    await asyncio.sleep(GAP)
    await response.write(EVENT[20:])
    await asyncio.sleep(GAP)
    await response.write(b": keep-alive\n\n")  # neither a comment...
    await asyncio.sleep(GAP)
    await response.write(b"data: [DONE]\n\n")  # ...nor the end is a token
    await response.write_eof()
    return response


async def plain_json(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for part in (b'{"choices":', b'[{"text":"x"}]', b"}"):
        await response.write(part)
        await asyncio.sleep(0.01)
    await response.write_eof()
    return response


async def failing(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=500, headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"error":"boom"}\n\n')
    await response.write_eof()
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def through() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[ProxyMetrics, float]]]]:
    """Send one streamed request through the proxy to a fake Coordinator answering with `handler`;
    returns the proxy's metrics and how long the client waited for the whole reply."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def send(handler: Handler) -> tuple[ProxyMetrics, float]:
        up_runner, up_port = await fake_coordinator(handler)
        cleanups.append(up_runner.cleanup)
        metrics = ProxyMetrics(CollectorRegistry())
        proxy, runner, url = await proxy_to(up_port, metrics)
        cleanups.extend([runner.cleanup, proxy.close])
        began = time.perf_counter()
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(url + PATH, json={"stream": True}) as response,
        ):
            await response.read()
        return metrics, time.perf_counter() - began

    yield send
    for cleanup in reversed(cleanups):
        await cleanup()


def value(metrics: ProxyMetrics, name: str, suffix: str, **labels: str) -> float:
    histogram = getattr(metrics, name).labels(PATH)
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith(suffix) and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{suffix} {labels} not found")


async def test_tokens_are_the_events_not_the_chunks(
    through: Callable[[Handler], Awaitable[tuple[ProxyMetrics, float]]],
) -> None:
    metrics, waited = await through(coalesced)
    assert value(metrics, "ttft", "_count") == 1
    # Four token events: three gaps, though the stream came in six writes.
    assert value(metrics, "tpot", "_count") == 3
    # The gaps add up to the time from the first token to the last: at least the three sleeps
    # between them, at most the whole reply.
    total = value(metrics, "tpot", "_sum")
    assert 3 * GAP <= total <= waited
    # Tokens 2 and 3 shared one gap (GAP/2 each, never less); token 4 waited two sleeps. No
    # observation is near 0, as the second event of a chunk timed by chunks would be.
    assert value(metrics, "tpot", "_bucket", le="0.02") == 0
    assert value(metrics, "tpot", "_bucket", le="+Inf") == 3


async def test_a_stream_with_no_events_to_count_gets_a_ttft_and_no_tpot(
    through: Callable[[Handler], Awaitable[tuple[ProxyMetrics, float]]],
) -> None:
    metrics, _ = await through(plain_json)
    assert value(metrics, "ttft", "_count") == 1
    assert value(metrics, "tpot", "_count") == 0


async def test_a_failed_stream_is_not_timed(
    through: Callable[[Handler], Awaitable[tuple[ProxyMetrics, float]]],
) -> None:
    metrics, _ = await through(failing)
    assert value(metrics, "ttft", "_count") == 0
    assert value(metrics, "tpot", "_count") == 0
    assert metrics.requests.labels(PATH, "500")._value.get() == 1
