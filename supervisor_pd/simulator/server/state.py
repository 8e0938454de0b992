"""A simulated Server's state: health, PD role and links, batch slots, KV blocks, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from supervisor_pd.simulator.server.config import ServerConfig

ROLE_UNKNOWN, ROLE_SWITCHING, ROLE_READY = "RoleUnknown", "RoleSwitching", "RoleReady"
LINKING = "linking"
TOTAL_BLOCKS = 1024

_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5)
_E2E_BUCKETS = (1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60)
_TOKEN_BUCKETS = (10, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


@dataclass
class Peer:
    id: int
    server_ip: str
    link: str = LINKING  # what the last link query found (dmi.py)
    made: bool = False  # the backend has made the link; the next query sees it
    since: float = field(default_factory=time.monotonic)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1


class Metrics:
    """MindIE's metric names (reference §2.7), label model_name, in Prometheus text format."""

    def __init__(self) -> None:
        self.received = 0
        self.success = 0
        self.failed = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.ttft = Histogram(_TTFT_BUCKETS)
        self.tpot = Histogram(_TPOT_BUCKETS)
        self.e2e = Histogram(_E2E_BUCKETS)
        self.request_prompt = Histogram(_TOKEN_BUCKETS)
        self.request_generation = Histogram(_TOKEN_BUCKETS)

    def render(self, model: str, running: int, waiting: int, cache_usage: float) -> str:
        label = f'{{model_name="{model}"}}'
        out: list[str] = []

        def one(name: str, kind: str, help_text: str, value: float) -> None:
            out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{label} {value}"])

        def hist(name: str, help_text: str, h: Histogram) -> None:
            out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} histogram"])
            for bound, count in zip(h.buckets, h.counts, strict=True):
                out.append(f'{name}_bucket{{model_name="{model}",le="{bound}"}} {count}')
            out.append(f'{name}_bucket{{model_name="{model}",le="+Inf"}} {h.total}')
            out.append(f"{name}_sum{label} {h.sum}")
            out.append(f"{name}_count{label} {h.total}")

        one("request_received_total", "counter", "Number of requests received so far.", self.received)
        one("request_success_total", "counter", "Number of requests proceed successfully so far.", self.success)
        one("request_failed_total", "counter", "Number of requests failed so far.", self.failed)
        one("prompt_tokens_total", "counter", "Number of prefill tokens processed.", self.prompt_tokens)
        one("generation_tokens_total", "counter", "Number of generation tokens processed.", self.generation_tokens)
        one("num_preemptions_total", "counter", "Cumulative number of preemption from the engine.", 0)
        one("num_requests_running", "gauge", "Number of requests currently running on NPU.", running)
        one("num_requests_waiting", "gauge", "Number of requests waiting to be processed.", waiting)
        one("num_requests_swapped", "gauge", "Number of requests swapped to CPU.", 0)
        one("avg_prompt_throughput_toks_per_s", "gauge", "Average prefill throughput in tokens/s.", 0.0)
        one("avg_generation_throughput_toks_per_s", "gauge", "Average generation throughput in tokens/s.", 0.0)
        failed_perc = self.failed / self.received if self.received else 0.0
        one("failed_request_perc", "gauge", "Requests failure rate. 1 means 100 percent usage.", failed_perc)
        one("npu_cache_usage_perc", "gauge", "NPU KV-cache usage. 1 means 100 percent usage.", cache_usage)
        one("cpu_cache_usage_perc", "gauge", "CPU KV-cache usage. 1 means 100 percent usage.", 0.0)
        one("npu_prefix_cache_hit_rate", "gauge", "NPU prefix cache block hit rate.", 0.0)
        one("all_radix_match_num", "gauge", "Number of radix tree matches.", 0)
        one("npu_radix_match_hit_num", "gauge", "Number of radix tree match hits on NPU.", 0)
        hist("time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.ttft)
        hist("time_per_output_token_seconds", "Histogram of time per output token in seconds.", self.tpot)
        hist("e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", self.e2e)
        hist("request_prompt_tokens", "Number of prefill tokens processed.", self.request_prompt)
        hist("request_generation_tokens", "Number of generation tokens processed.", self.request_generation)
        return "\n".join(out) + "\n"


class Slots:
    """maxBatchSize running requests; the rest wait in arrival order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.running = 0
        self.waiting = 0
        self.blocks_used = 0
        self._sem = asyncio.Semaphore(size)
        self.idle = asyncio.Event()
        self.idle.set()

    @contextlib.asynccontextmanager
    async def hold(self, blocks: int) -> AsyncIterator[None]:
        self.waiting += 1
        self.idle.clear()
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        self.blocks_used += blocks
        try:
            yield
        finally:
            self.running -= 1
            self.blocks_used -= blocks
            self._sem.release()
            if not self.running and not self.waiting:
                self.idle.set()


@dataclass
class ServerState:
    config: ServerConfig
    healthy: bool = False
    stopped: bool = False
    role: str = "none"
    role_status: str = ROLE_UNKNOWN
    role_assigned: bool = False  # a link task has run (DmiRole assignedRole_)
    service_normal: bool = False  # the HealthChecker left INIT (dmi.health_wait)
    model_loaded: bool = False
    loading: bool = False
    instance_id: int | None = None
    peers: dict[int, Peer] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    slots: Slots = field(init=False)

    def __post_init__(self) -> None:
        self.slots = Slots(self.config.max_batch_size)
        if not self.config.dmi:
            self.role_status = ROLE_READY

    def blocks_for(self, tokens: int) -> int:
        return max(1, math.ceil(tokens / self.config.cache_block_size))

    @property
    def total_blocks(self) -> int:
        return TOTAL_BLOCKS if self.model_loaded else 0

    @property
    def free_blocks(self) -> int:
        return max(0, self.total_blocks - self.slots.blocks_used)

    @property
    def busy(self) -> bool:
        """BUSY in the HealthChecker's terms: usage at or over HealthCheckConfig.npuUsageThreshold."""
        threshold = self.config.npu_usage_threshold
        return threshold > 0 and 100 * self.slots.running >= threshold * self.config.max_batch_size

    @property
    def ready(self) -> bool:
        """What /v2/health/ready reports: the engine up and the HealthChecker out of INIT."""
        return self.model_loaded and self.service_normal

    def status_body(self) -> dict[str, object]:
        running = self.slots.running
        linked = [{"target": peer.id, "link": peer.link} for peer in self.peers.values() if peer.link != LINKING]
        return {
            "service": {"roleStatus": self.role_status, "currentRole": self.role},
            "resource": {
                "availSlotsNum": max(0, self.config.max_batch_size - running) if self.model_loaded else 0,
                "availBlockNum": self.free_blocks,
                "waitingRequestNum": self.slots.waiting,
                "runningRequestNum": running,
                "swappedRequestNum": 0,
                "freeNpuBlockNums": self.free_blocks,
                "freeCpuBlockNums": 0,
                "totalNpuBlockNums": self.total_blocks,
                "totalCpuBlockNums": 0,
            },
            # Only links with an outcome (HandleStatusV1 lists remoteNodeLinkStatus_ entries shown).
            "linkStatus": {"peers": linked},
        }
