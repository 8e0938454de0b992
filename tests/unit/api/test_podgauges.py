"""The pod's gauges (api/podgauges.py): what each counts, from fakes of the Servers' answers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor_pd.api import podgauges
from supervisor_pd.api.childmetrics import Scraped, Target
from supervisor_pd.api.metrics import MetricsEndpoint
from supervisor_pd.api.podgauges import (
    KV_CACHE,
    NOT_READY_WAITING,
    RUNNING,
    WAITING,
    PodGauges,
    ServerLoad,
    StatusTarget,
    gauges,
    load_of,
    render,
    status_targets,
)
from supervisor_pd.api.statusclient import StatusClient
from supervisor_pd.runtime.snapshot import snapshot
from tests.factories import mindie_status as status
from tests.unit.api.test_metrics import SERVER_TEXT
from tests.unit.runtime.fakes import Stack
from tests.unit.runtime.test_npuwatch import ready_stack


def prefill(waiting: int = 0, running: int = 0) -> ServerLoad:
    return ServerLoad("prefill", waiting, running, 1024, 1024)


def decode(running: int = 0, free: int = 1024, total: int = 1024, waiting: int = 0) -> ServerLoad:
    return ServerLoad("decode", waiting, running, free, total)


# --- reading a Server's /v1/status ---------------------------------------------------------


def test_a_status_answer_gives_the_servers_queue_work_and_blocks() -> None:
    assert load_of(status()) == ServerLoad("decode", 2, 10, 700, 1024)


def test_the_role_is_the_one_the_server_states_else_the_one_supervisor_pd_knows() -> None:
    assert load_of(status("prefill"), "decode").role == "prefill"  # type: ignore[union-attr]
    assert load_of(status("none"), "decode").role == "decode"  # type: ignore[union-attr]
    assert load_of({"resource": {}}, "prefill") == ServerLoad("prefill", 0, 0, 0, 0)


def test_odd_values_count_as_zero_and_an_answer_without_resource_as_none() -> None:
    odd = status(waitingRequestNum=True, runningRequestNum=-3, freeNpuBlockNums="7", totalNpuBlockNums=1.5)
    assert load_of(odd) == ServerLoad("decode", 0, 0, 0, 0)
    for body in (None, [], "x", {"service": {}}, {"resource": []}):
        assert load_of(body) is None


# --- what the gauges count -----------------------------------------------------------------


def test_running_adds_prefill_and_decode_and_waiting_is_the_prefill_queue() -> None:
    # A request runs on P, then on D. D's waiting are requests whose KV it is pulling: P still
    # counts them (MindIE-LLM scheduler.cpp:215, :695-703), so they are not counted twice.
    found = gauges([prefill(waiting=3, running=2), decode(running=5, waiting=4)], in_flight=0, ready=True)
    assert (found.waiting, found.running) == (3, 7)


def test_requests_relayed_that_no_server_runs_are_waiting_in_the_coordinator() -> None:
    found = gauges([prefill(waiting=3, running=2), decode(running=5)], in_flight=12, ready=True)
    assert (found.waiting, found.running) == (5, 7)


def test_the_prefill_queue_counts_when_requests_come_by_another_door() -> None:
    # Requests sent to the Coordinator's own port are not in this port's count.
    found = gauges([prefill(waiting=4, running=1)], in_flight=1, ready=True)
    assert found.waiting == 4


def test_a_server_that_did_not_answer_leaves_its_requests_waiting_not_lost() -> None:
    found = gauges([decode(running=5)], in_flight=8, ready=True)
    assert (found.waiting, found.running) == (3, 5)


def test_kv_cache_use_is_the_decode_servers_blocks_pooled() -> None:
    loads = [decode(free=200, total=1000), decode(free=3000, total=3000), ServerLoad("prefill", 0, 9, 0, 1000)]
    assert gauges(loads, 0, True).kv_cache == pytest.approx(800 / 4000)
    # More free than total (a torn read) counts as empty, never below 0.
    assert gauges([decode(free=5000, total=1000)], 0, True).kv_cache == 0.0


def test_no_decode_capacity_known_is_a_full_cache() -> None:
    assert gauges([prefill()], 0, True).kv_cache == 1.0
    assert gauges([decode(free=0, total=0)], 0, True).kv_cache == 1.0
    assert gauges([], 0, True) == PodGauges(0, 0, 1.0)


def test_a_pod_not_ready_says_its_cache_is_full_and_its_queue_long() -> None:
    idle = gauges([prefill(), decode()], in_flight=0, ready=False)
    assert idle == PodGauges(NOT_READY_WAITING, 0, 1.0)
    busy = gauges([prefill(waiting=40, running=2), decode(running=3)], in_flight=50, ready=False)
    assert busy == PodGauges(NOT_READY_WAITING, 5, 1.0)


def test_the_three_families_parse_as_gauges() -> None:
    families = {f.name: f for f in text_string_to_metric_families(render(PodGauges(3, 7, 0.25)).decode())}
    assert {name: (f.type, f.samples[0].value, f.samples[0].labels) for name, f in families.items()} == {
        WAITING: ("gauge", 3.0, {}),
        RUNNING: ("gauge", 7.0, {}),
        KV_CACHE: ("gauge", 0.25, {}),
    }
    assert f"\n{WAITING} 3\n" in render(PodGauges(3, 7, 0.25)).decode()  # counts are integers


# --- which Servers are asked ----------------------------------------------------------------


def test_every_server_up_is_asked_on_its_management_port() -> None:
    stack = ready_stack()
    view = snapshot(stack.engine, stack.fx.clock)
    found = status_targets(stack.plan, view)
    expected = [StatusTarget(s.name, s.ip, s.ports.management, False, s.role.value) for s in stack.plan.servers]
    assert found == expected
    stack.exit("server-1")
    after = status_targets(stack.plan, snapshot(stack.engine, stack.fx.clock))
    assert [t.name for t in after] == ["server-2", "server-3", "server-4"]


# --- /metrics: fresh at every scrape, whatever the children's cache ---------------------------


class FakeServers:
    """Stands in for podgauges.read_loads: the loads the next scrape reads, and who was asked."""

    def __init__(self) -> None:
        self.loads: list[ServerLoad] = []
        self.asked: list[list[str]] = []

    async def __call__(self, client: StatusClient, found: Sequence[StatusTarget]) -> list[ServerLoad]:
        self.asked.append([target.name for target in found])
        return list(self.loads)


def endpoint_for(stack: Stack, monkeypatch: pytest.MonkeyPatch, cache_seconds: float) -> tuple[MetricsEndpoint, list]:  # type: ignore[type-arg]
    endpoint = MetricsEndpoint(stack.plan, lambda: snapshot(stack.engine, stack.fx.clock), 1.0, cache_seconds)
    scraped: list[Target] = []

    async def scrape(target: Target) -> Scraped:
        scraped.append(target)
        return Scraped(SERVER_TEXT, 0.001)

    monkeypatch.setattr(endpoint, "_scrape", scrape)
    return endpoint, scraped


def pod_values(text: bytes) -> tuple[float, float, float]:
    values = {f.name: [s.value for s in f.samples] for f in text_string_to_metric_families(text.decode())}
    (waiting,), (running,), (kv_cache,) = values[WAITING], values[RUNNING], values[KV_CACHE]
    return waiting, running, kv_cache


@pytest.mark.anyio
async def test_the_gauges_are_read_at_every_scrape_while_the_children_are_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    servers = FakeServers()
    monkeypatch.setattr(podgauges, "read_loads", servers)
    stack = ready_stack()
    endpoint, scraped = endpoint_for(stack, monkeypatch, cache_seconds=3600)
    try:
        servers.loads = [prefill(), decode(free=1024)]
        first = await endpoint.render()
        children = len(scraped)
        servers.loads = [prefill(waiting=2, running=1), decode(running=4, free=512)]
        for _ in range(3):
            endpoint.proxy.in_flight.inc()
        second = await endpoint.render()
    finally:
        await endpoint.close()
    assert len(scraped) == children == 5  # four Servers and the Coordinator, once: the second was cached
    assert pod_values(first) == (0, 0, 0.0)
    assert pod_values(second) == (2, 5, 0.5)
    assert servers.asked == [["server-1", "server-2", "server-3", "server-4"]] * 2
    # The cached part is the children's, unchanged; ours and the pod's come first, once each.
    assert second.endswith(first[first.index(b"# HELP num_requests_running") :])
    assert second.count(f"# TYPE {WAITING} gauge".encode()) == 1


@pytest.mark.anyio
async def test_a_pod_not_ready_shows_it_in_the_gauges_at_the_next_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = FakeServers()
    monkeypatch.setattr(podgauges, "read_loads", servers)
    stack = ready_stack()
    endpoint, _ = endpoint_for(stack, monkeypatch, cache_seconds=3600)
    try:
        servers.loads = [prefill(), decode(free=1024)]
        assert pod_values(await endpoint.render()) == (0, 0, 0.0)
        stack.exit("server-3")  # a decode Server: /readyz fails at once
        assert pod_values(await endpoint.render()) == (NOT_READY_WAITING, 0, 1.0)
    finally:
        await endpoint.close()
    assert servers.asked[-1] == ["server-1", "server-2", "server-4"]
