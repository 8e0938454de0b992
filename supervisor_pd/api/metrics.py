"""GET /metrics: supervisor_pd's own metrics (prometheus_client) and every child's, relabelled.

Names follow Prometheus's naming guide: one `supervisor_pd_` prefix, base units in the name
(`_seconds`, `_bytes`), counters ending in `_total`, `_info` for constant labels, and one label
name for a process everywhere (`process`). The children's families keep MindIE's names and get
`component`, `process` and `role` (api/childmetrics.py). Every family is listed in
docs/observability.md; tests/unit/api/test_metrics_names.py checks the rules.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import aiohttp
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from supervisor_pd import __version__
from supervisor_pd.api import podgauges
from supervisor_pd.api.childmetrics import Scraped, Target, merge, targets
from supervisor_pd.api.health import readiness
from supervisor_pd.api.npumetrics import NpuCollector
from supervisor_pd.api.statusclient import StatusClient
from supervisor_pd.runtime.events import Probe
from supervisor_pd.runtime.snapshot import Snapshot
from supervisor_pd.runtime.states import Phase, ProcState, RestartCause, Serving
from supervisor_pd.runtime.tlsclient import client_context

if TYPE_CHECKING:
    from supervisor_pd.plan.model import Plan
    from supervisor_pd.runtime.probes import Result

READY = "supervisor_pd_service_ready"
View = Callable[[], Snapshot]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
HEALTH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)
TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5)
PROCESS = ["process", "component"]


class Tally:
    """A gauge the proxy moves by one, whose value the pod's gauges read at every scrape
    (prometheus_client keeps a gauge's value private)."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.value = 0

    def inc(self) -> None:
        self.value += 1
        self.gauge.inc()

    def dec(self) -> None:
        self.value -= 1
        self.gauge.dec()


class ProxyMetrics:
    """Measured at the proxy: what an autoscaler or an inference gateway needs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "supervisor_pd_requests",
            "Inference requests through the proxy, by path and status code.",
            ["path", "code"],
            registry=registry,
        )
        self.in_flight = Tally(
            Gauge("supervisor_pd_requests_in_flight", "Inference requests being proxied now.", registry=registry)
        )
        self.streams = Gauge(
            "supervisor_pd_streams_in_flight", "Streaming replies being relayed now.", registry=registry
        )
        self.cut = Counter(
            "supervisor_pd_streams_cut",
            "Streaming replies that broke off upstream (the Coordinator closed or went silent); "
            "the client got an error event.",
            ["path"],
            registry=registry,
        )
        self.ttft = Histogram(
            "supervisor_pd_time_to_first_token_seconds",
            "From a request's arrival to its first token event at the proxy (a stream), or to the whole "
            "reply (not streamed); successful replies only.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tpot = Histogram(
            "supervisor_pd_time_per_output_token_seconds",
            "Time between token events of a stream at the proxy; k events read together share the time "
            "since the previous ones, 1/k each.",
            ["path"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "supervisor_pd_request_duration_seconds",
            "From a request's arrival to the end of its reply.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def known_paths(self, paths: Iterable[str]) -> None:
        """Show the cut-stream counters at 0 from the start: a series that appears only with its
        first increment hides that increment from rate() and increase(). (Histograms are left to
        appear with their first request: 15 lines each per path is not worth it.)"""
        for path in paths:
            self.cut.labels(path)


class SupervisorCollector(Collector):
    """Process states, serving states, restarts and the service phase, read at scrape time."""

    def __init__(self, view: View) -> None:
        self.view = view

    def collect(self) -> Iterable[Metric]:
        view = self.view()
        yield from self._processes(view)
        phase = GaugeMetricFamily("supervisor_pd_service_phase", "1 for the phase the service is in.", labels=["phase"])
        for value in Phase:
            phase.add_metric([value.value], 1.0 if view.phase is value else 0.0)
        ready = GaugeMetricFamily(READY, "1 when the whole service is ready.")
        ready.add_metric([], 1.0 if view.ready else 0.0)
        draining = GaugeMetricFamily("supervisor_pd_draining", "1 while the service drains to stop.")
        draining.add_metric([], 1.0 if view.phase is Phase.DRAINING else 0.0)
        # A count that only grows under steady traffic is a leak (a cancelled request whose
        # task never ended, for example).
        tasks = GaugeMetricFamily("supervisor_pd_event_loop_tasks", "asyncio tasks alive in supervisor_pd.")
        try:
            alive = len(asyncio.all_tasks())
        except RuntimeError:  # read outside the event loop (a registry built in a test): none run
            alive = 0
        tasks.add_metric([], float(alive))
        yield from (phase, ready, draining, tasks)

    @staticmethod
    def _processes(view: Snapshot) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "supervisor_pd_process_state", "1 for the process state each process is in.", labels=[*PROCESS, "state"]
        )
        serving = GaugeMetricFamily(
            "supervisor_pd_process_serving_state",
            "1 for the serving state each process is in (what it is to the service: loading, role-ready, ...).",
            labels=[*PROCESS, "state"],
        )
        since = GaugeMetricFamily(
            "supervisor_pd_process_serving_since_timestamp_seconds",
            "Unix time the process's current serving state began.",
            labels=PROCESS,
        )
        up = GaugeMetricFamily(
            "supervisor_pd_process_up", "1 if the process answers its management endpoints in this run.", labels=PROCESS
        )
        restarts = CounterMetricFamily(
            "supervisor_pd_process_restarts",
            "Restarts of each process since the supervisor started, by cause.",
            labels=[*PROCESS, "cause"],
        )
        for child in view.processes:
            labels = [child.name, child.kind.value]
            for value in ProcState:
                state.add_metric([*labels, value.value], 1.0 if child.state is value else 0.0)
            for word in Serving:
                serving.add_metric([*labels, word.value], 1.0 if child.serving == word else 0.0)
            since.add_metric(labels, child.serving_since)
            up.add_metric(labels, 1.0 if child.up else 0.0)
            # Every cause from the start, at 0: rate() and increase() see the first restart.
            causes = dict.fromkeys((cause.value for cause in RestartCause), 0)
            causes.update(child.restart_causes)
            for cause, count in causes.items():
                restarts.add_metric([*labels, cause], float(count))
        yield from (state, serving, since, up, restarts)


def make_registry(view: View) -> CollectorRegistry:
    """supervisor_pd's own families: the supervisor's, the NPUs', build info, the process's and
    the interpreter's (prometheus_client's collectors, registered on this registry rather than
    the global one)."""
    # `_created` series double the lines for nothing a dashboard uses, and every line costs
    # event-loop time on each scrape.
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SupervisorCollector(view))
    registry.register(NpuCollector(view))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("supervisor_pd_build", "supervisor_pd's version and the Python it runs on.", registry=registry).info(
        {"version": __version__, "python": platform.python_version()}
    )
    return registry


class MetricsEndpoint:
    def __init__(self, plan: Plan, view: View, timeout: float, cache_seconds: float) -> None:
        self.plan = plan
        self.view = view
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cache_seconds = cache_seconds
        self.registry = make_registry(view)
        self.proxy = ProxyMetrics(self.registry)
        self.health_seconds = Histogram(
            "supervisor_pd_health_check_seconds",
            "Latency of liveness and readiness checks of each process.",
            PROCESS,
            buckets=HEALTH_BUCKETS,
            registry=self.registry,
        )
        self._components = {p.name: p.kind.value for p in view().processes}
        self._session: aiohttp.ClientSession | None = None
        self._status: StatusClient | None = None
        self._cache: tuple[float, bytes] | None = None
        self._lock = asyncio.Lock()
        self._pod_lock = asyncio.Lock()  # the status client takes one scrape at a time

    def observe_health(self, name: str, probe: Probe, result: Result) -> None:
        if probe in (Probe.LIVE, Probe.READY):
            self.health_seconds.labels(name, self._components.get(name, "")).observe(result.seconds)

    async def close(self) -> None:
        if self._status is not None:
            self._status.close()
        if self._session is not None:
            await self._session.close()

    async def render(self) -> bytes:
        """Our own metrics and the pod's gauges, always current, then the children's, reused for
        cache_seconds so a burst of scrapes costs the children one."""
        async with self._lock:
            view = self.view()
            pod = asyncio.ensure_future(self.pod_gauges(view))
            cache = self._cache
            if cache is not None and time.monotonic() - cache[0] >= self.cache_seconds:
                cache = None
            found = targets(self.plan, view) if cache is None else []
            scrapes = [asyncio.ensure_future(self._scrape(target)) for target in found]
            # Let the requests go out, then render our own metrics while the children answer.
            for _ in range(3):
                await asyncio.sleep(0)
            ours = generate_latest(self.registry)
            pod_text = await pod
            if cache is not None:
                return ours + pod_text + cache[1]
            children = merge(found, list(await asyncio.gather(*scrapes))).encode()
            self._cache = (time.monotonic(), children)
            return ours + pod_text + children

    async def pod_gauges(self, view: Snapshot) -> bytes:
        """supervisor_pd_pod_*: every Server's /v1/status read now (api/podgauges.py)."""
        if self._status is None:
            self._status = StatusClient(client_context(self.plan.tls))
        async with self._pod_lock:
            loads = await podgauges.read_loads(self._status, podgauges.status_targets(self.plan, view))
        ready = all(check.ok for check in readiness(view))
        return podgauges.render(podgauges.gauges(loads, self.proxy.in_flight.value, ready))

    async def render_pod(self) -> bytes:
        """GET /metrics/pod: the pod's gauges and its readiness alone. An endpoint picker polls every
        50 ms; the whole /metrics (every child's families) would cost this pod's CPU for nothing."""
        view = self.view()
        ready = f"# HELP {READY} 1 when the whole service is ready.\n# TYPE {READY} gauge\n{READY} {int(view.ready)}\n"
        return await self.pod_gauges(view) + ready.encode()

    async def _scrape(self, target: Target) -> Scraped:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, keepalive_timeout=30, ssl=client_context(self.plan.tls) or True
                ),
                timeout=self.timeout,
            )
        began = time.perf_counter()
        text = None
        try:
            async with self._session.get(target.url) as response:
                if response.status == 200:
                    text = await response.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            pass
        return Scraped(text, time.perf_counter() - began)
