"""GET /metrics: supervisor_pd's own metrics (prometheus_client) and every child's, relabelled.

Children are scraped in parallel, each with a timeout, and the result is reused for a short
while. Every child sample gets the same label set, `component`, `server` and `role` (a child's
own label of one of those names becomes `exported_<name>`), and each target has an `up` gauge.
A child that does not answer is `up 0`; the scrape itself never fails because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisor_pd.api.npumetrics import NpuCollector
from supervisor_pd.runtime.events import Probe
from supervisor_pd.runtime.snapshot import Snapshot
from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import Phase, ProcState
from supervisor_pd.runtime.tlsclient import client_context

if TYPE_CHECKING:
    from supervisor_pd.plan.model import Plan
    from supervisor_pd.runtime.probes import Result

View = Callable[[], Snapshot]

SERVICE_HELP = {
    "supervisor_pd_service_requests_running": "Requests running on the Servers (sum of their num_requests_running).",
    "supervisor_pd_service_requests_waiting": "Requests queued on the Servers (sum of their num_requests_waiting).",
}
TARGET_LABELS = ("component", "server", "role")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
HEALTH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)
TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5)
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created", "_info")


class ProxyMetrics:
    """Measured at the proxy: what an autoscaler or an inference gateway needs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "supervisor_pd_requests",
            "Inference requests through the proxy, by path and status code.",
            ["path", "code"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "supervisor_pd_requests_in_flight", "Inference requests being proxied now.", registry=registry
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
            "From a request's arrival to the first bytes of its reply, measured at the proxy.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tpot = Histogram(
            "supervisor_pd_time_per_output_token_seconds",
            "Time between consecutive chunks of a streaming reply (one chunk per token event).",
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


class SupervisorCollector(Collector):
    """Process states, restarts and the service phase, read from the supervisor at scrape time."""

    def __init__(self, view: View) -> None:
        self.view = view

    def collect(self) -> Iterable[Metric]:
        view = self.view()
        state = GaugeMetricFamily(
            "supervisor_pd_process_state",
            "1 for the state each process is in.",
            labels=["process", "component", "state"],
        )
        up = GaugeMetricFamily(
            "supervisor_pd_process_up", "1 if the process answers its health checks.", labels=["process", "component"]
        )
        restarts = CounterMetricFamily(
            "supervisor_pd_process_restarts",
            "Restarts of each process since the supervisor started.",
            labels=["process", "component"],
        )
        for child in view.processes:
            labels = [child.name, child.kind.value]
            for value in ProcState:
                state.add_metric([*labels, value.value], 1.0 if child.state is value else 0.0)
            up.add_metric(labels, 1.0 if child.up else 0.0)
            restarts.add_metric(labels, float(child.restarts))
        phase = GaugeMetricFamily("supervisor_pd_service_phase", "1 for the phase the service is in.", labels=["phase"])
        for value in Phase:
            phase.add_metric([value.value], 1.0 if view.phase is value else 0.0)
        ready = GaugeMetricFamily("supervisor_pd_service_ready", "1 when the whole service is ready.")
        ready.add_metric([], 1.0 if view.ready else 0.0)
        draining = GaugeMetricFamily("supervisor_pd_draining", "1 while the service drains to stop.")
        draining.add_metric([], 1.0 if view.phase is Phase.DRAINING else 0.0)
        # A count that only grows under steady traffic is a leak (a cancelled request whose
        # task never ended, for example).
        tasks = GaugeMetricFamily("supervisor_pd_event_loop_tasks", "asyncio tasks alive in supervisor_pd.")
        tasks.add_metric([], float(len(asyncio.all_tasks())))
        yield from (state, up, restarts, phase, ready, draining, tasks)


@dataclass
class Family:
    help: str = ""
    kind: str = ""
    samples: list[str] = field(default_factory=list)


def _label_text(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in labels.items())


def relabel(
    text: str, labels: dict[str, str], families: dict[str, Family], totals: dict[str, float] | None = None
) -> None:
    """Add `labels` to every sample of `text`, grouping samples by family into `families`; the
    values of the metrics named in `totals` are added to it. One pass, plain string operations:
    this runs in the event loop for every child on every scrape."""
    ours = _label_text(labels)
    bare = "{" + ours + "}"
    more = "{" + ours + ","
    clashes = tuple(f'{name}="' for name in labels)
    collide = re.compile(r"(^|,)\s*(" + "|".join(labels) + r')="')
    current = ""
    owner = ""
    samples: list[str] = []
    for line in text.split("\n"):
        if not line or line.isspace():
            continue
        if line[0] == "#":
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                family = families.setdefault(parts[2], Family())
                if parts[1] == "HELP":
                    family.help = family.help or (parts[3] if len(parts) > 3 else "")
                else:
                    family.kind = family.kind or (parts[3] if len(parts) > 3 else "untyped")
                    current = parts[2]
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            rest = line[brace + 1 :]
            if rest.startswith("}"):
                sample = name + bare + rest[1:]
            else:
                if any(clash in rest for clash in clashes):
                    close = rest.rfind("}")
                    rest = collide.sub(r'\1exported_\2="', rest[:close]) + rest[close:]
                sample = name + more + rest
        else:
            name = line[:space] if space != -1 else line
            sample = name + bare + line[len(name) :]
        if name != owner:
            owner = name
            family_name = (
                current
                if current and (name == current or (name.startswith(current) and name[len(current) :] in _SUFFIXES))
                else name
            )
            samples = families.setdefault(family_name, Family()).samples
            if totals is not None and name in totals:
                with contextlib.suppress(ValueError, IndexError):
                    totals[name] += float(line.rsplit(" ", 1)[1])
        elif totals is not None and name in totals:
            with contextlib.suppress(ValueError, IndexError):
                totals[name] += float(line.rsplit(" ", 1)[1])
        samples.append(sample)


@dataclass(frozen=True)
class Target:
    labels: dict[str, str]
    url: str


def _scheme(plan: Plan, link: str) -> str:
    return "https" if plan.tls.on(link) else "http"


def targets(plan: Plan, view: Snapshot) -> list[Target]:
    found = []
    for child in view.processes:
        server = child.spec.server
        if child.kind is Kind.SERVER and server is not None:
            role = child.role or server.role.value
            found.append(
                Target(
                    {"component": "server", "server": child.name, "role": role},
                    f"{_scheme(plan, 'server_metrics')}://{server.ip}:{server.ports.metrics}/metrics",
                )
            )
    coordinator = plan.coordinator
    found.append(
        Target(
            {"component": "coordinator", "server": "", "role": ""},
            f"{_scheme(plan, 'coordinator_metrics')}://{coordinator.manage_ip}:{coordinator.external_port}/metrics",
        )
    )
    return found


class MetricsEndpoint:
    def __init__(self, plan: Plan, view: View, timeout: float, cache_seconds: float) -> None:
        self.plan = plan
        self.view = view
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cache_seconds = cache_seconds
        # `_created` series double the lines for nothing a dashboard uses, and every line costs
        # event-loop time on each scrape.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(SupervisorCollector(view))
        self.registry.register(NpuCollector(view))
        self.proxy = ProxyMetrics(self.registry)
        self.health_seconds = Histogram(
            "supervisor_pd_health_check_seconds",
            "Latency of health checks of each process.",
            ["process", "component"],
            buckets=HEALTH_BUCKETS,
            registry=self.registry,
        )
        self._components = {p.name: p.kind.value for p in view().processes}
        self._session: aiohttp.ClientSession | None = None
        self._cache: tuple[float, bytes] | None = None
        self._lock = asyncio.Lock()

    def observe_health(self, name: str, probe: Probe, result: Result) -> None:
        if probe in (Probe.LIVE, Probe.READY):
            self.health_seconds.labels(name, self._components.get(name, "")).observe(result.seconds)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def render(self) -> bytes:
        """Our own metrics, always current, then the children's, reused for cache_seconds so a
        burst of scrapes costs the children one."""
        async with self._lock:
            now = time.monotonic()
            if self._cache is not None and now - self._cache[0] < self.cache_seconds:
                return generate_latest(self.registry) + self._cache[1]
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=0, keepalive_timeout=30, ssl=client_context(self.plan.tls) or True
                    ),
                    timeout=self.timeout,
                )
            found = targets(self.plan, self.view())
            scrapes = [asyncio.ensure_future(self._scrape(target)) for target in found]
            # Let the requests go out, then render our own metrics while the children answer.
            for _ in range(3):
                await asyncio.sleep(0)
            ours = generate_latest(self.registry)
            texts = await asyncio.gather(*scrapes)
            children = self._merge(found, texts).encode()
            self._cache = (time.monotonic(), children)
            return ours + children

    def _merge(self, found: list[Target], texts: list[str | None]) -> str:
        families: dict[str, Family] = {}
        up = Family(help="1 if the child's own /metrics answered this scrape.", kind="gauge")
        totals = {"num_requests_running": 0.0, "num_requests_waiting": 0.0}
        for target, text in zip(found, texts, strict=True):
            up.samples.append(f"up{{{_label_text(target.labels)}}} {1 if text is not None else 0}")
            if text is None:
                continue
            relabel(text, target.labels, families, totals if target.labels["component"] == "server" else None)
        families["up"] = up
        rendered = "".join(_render(name, family) for name, family in families.items())
        return rendered + "".join(
            f"# HELP {name} {SERVICE_HELP[name]}\n# TYPE {name} gauge\n{name} {value}\n"
            for name, value in (
                ("supervisor_pd_service_requests_running", totals["num_requests_running"]),
                ("supervisor_pd_service_requests_waiting", totals["num_requests_waiting"]),
            )
        )

    async def _scrape(self, target: Target) -> str | None:
        assert self._session is not None
        try:
            async with self._session.get(target.url) as response:
                if response.status != 200:
                    return None
                return await response.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return None


def _render(name: str, family: Family) -> str:
    lines = [f"# HELP {name} {family.help}"] if family.help else []
    if family.kind:
        lines.append(f"# TYPE {name} {family.kind}")
    lines.extend(family.samples)
    return "\n".join(lines) + "\n" if lines else ""
