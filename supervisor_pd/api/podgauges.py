"""The pod's gauges: requests waiting, requests running and KV-cache use, for the Gateway API
Inference Extension's endpoint picker (its model server protocol) and for an autoscaler.

A PD pod is one endpoint to the picker, so the gauges describe the pod, not a Server:

- waiting: the prefill Servers' `waitingRequestNum`, or, when more, the requests supervisor_pd's
  port is relaying that no Server counts as running (which is where the Coordinator's own queue
  shows: MindIE-Motor exposes no count of it);
- running: the prefill and decode Servers' `runningRequestNum`, added: a request runs on P, then
  on D, never on both at once;
- KV-cache use: the decode Servers' used NPU blocks over their total, pooled.

Each Server's numbers come from its `/v1/status`, asked at every scrape of `/metrics` (never the
children's cached part): MindIE-LLM computes that answer when asked, from its scheduler's
counters, whereas its own `/metrics` gauges are sampled once a second. While the pod is not ready
the gauges tell the picker to go elsewhere (KV cache full, a queue longer than any ready pod's).
docs/scale-out.md ("The pod's gauges") gives the MindIE sources and the picker's use of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from supervisor_pd.api.statusclient import Ask, StatusClient
from supervisor_pd.runtime.snapshot import Snapshot
from supervisor_pd.runtime.spec import Kind

if TYPE_CHECKING:
    from supervisor_pd.plan.model import Plan

WAITING = "supervisor_pd_pod_requests_waiting"
RUNNING = "supervisor_pd_pod_requests_running"
KV_CACHE = "supervisor_pd_pod_kv_cache_usage_ratio"
# A pod not ready that is still in the picker's pool (the kubelet takes it out after its probe
# fails failureThreshold times) must score last on the queue: the queue scorer gives 0 to the
# longest queue among the candidates (EPP v1.5.0 scorer/queuedepth/queue.go:78-107). No ready pod
# can queue more than its Coordinator holds, and MindIE-Motor caps `max_requests` at 90000
# (coordinator/configure/Configure.cpp:26, :631-636).
NOT_READY_WAITING = 90_000
# The picker polls every 50 ms and calls metrics older than 200 ms stale (EPP v1.5.0
# server/options.go:102, utilization/config.go:36): a status slower than this is left out.
STATUS_TIMEOUT = 0.25
ROLES = ("prefill", "decode")

HELP = {
    WAITING: "Requests queued in the pod: the prefill Servers' waiting requests, or the requests relayed by "
    f"this port that no Server runs, if more (the Coordinator's queue); {NOT_READY_WAITING} while the pod is not "
    "ready. Fresh at every scrape.",
    RUNNING: "Requests running in the pod: the prefill and decode Servers' running requests. Fresh at every scrape.",
    KV_CACHE: "KV-cache use of the pod, 0..1: the decode Servers' used NPU blocks over their total; 1 while the "
    "pod is not ready. Fresh at every scrape.",
}


@dataclass(frozen=True)
class StatusTarget:
    name: str
    host: str
    port: int  # its management port
    tls: bool
    role: str | None  # the role supervisor_pd last saw, if the answer names none


@dataclass(frozen=True)
class ServerLoad:
    role: str | None
    waiting: int
    running: int
    free_blocks: int
    total_blocks: int


@dataclass(frozen=True)
class PodGauges:
    waiting: int
    running: int
    kv_cache: float


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def load_of(body: Any, role: str | None = None) -> ServerLoad | None:
    """A Server's /v1/status answer (MindIE-LLM http_handler.cpp HandleStatusV1, SetJsonObj) as
    its load; None for an answer without `resource`."""
    if not isinstance(body, dict) or not isinstance(body.get("resource"), dict):
        return None
    resource = body["resource"]
    service = body.get("service")
    said = service.get("currentRole") if isinstance(service, dict) else None
    return ServerLoad(
        role=said if said in ROLES else role,
        waiting=_count(resource.get("waitingRequestNum")),
        running=_count(resource.get("runningRequestNum")),
        free_blocks=_count(resource.get("freeNpuBlockNums")),
        total_blocks=_count(resource.get("totalNpuBlockNums")),
    )


def gauges(loads: Sequence[ServerLoad], in_flight: int, ready: bool) -> PodGauges:
    """The pod's gauges from the Servers that answered, the requests this port relays now, and
    whether the pod is ready (its /readyz)."""
    prefill = [load for load in loads if load.role == "prefill"]
    decode = [load for load in loads if load.role == "decode"]
    running = sum(load.running for load in prefill) + sum(load.running for load in decode)
    # A Server that did not answer leaves its requests in in_flight - running: still counted.
    waiting = max(sum(load.waiting for load in prefill), in_flight - running)
    total = sum(load.total_blocks for load in decode)
    used = sum(load.total_blocks - min(load.free_blocks, load.total_blocks) for load in decode)
    # No decode capacity known (none answered, or none has its model loaded): no room to offer.
    kv_cache = used / total if total else 1.0
    if not ready:
        return PodGauges(max(waiting, NOT_READY_WAITING), running, 1.0)
    return PodGauges(waiting, running, kv_cache)


def render(values: PodGauges) -> bytes:
    """The three families in Prometheus text format."""
    lines = []
    for name, value in ((WAITING, values.waiting), (RUNNING, values.running), (KV_CACHE, values.kv_cache)):
        lines.append(f"# HELP {name} {HELP[name]}\n# TYPE {name} gauge\n{name} {value}\n")
    return "".join(lines).encode()


def status_targets(plan: Plan, view: Snapshot) -> list[StatusTarget]:
    """Every Server that answers its management endpoints in this run (a stopped or restarting
    one has nothing running and would only cost the timeout)."""
    tls = plan.tls.on("server_management")
    found = []
    for child in view.of_kind(Kind.SERVER):
        server = child.spec.server
        if server is not None and child.up:
            found.append(StatusTarget(child.name, server.ip, server.ports.management, tls, child.role))
    return found


async def read_loads(
    client: StatusClient, found: Sequence[StatusTarget], seconds: float = STATUS_TIMEOUT
) -> list[ServerLoad]:
    """Every target's /v1/status at once; one that fails or takes over `seconds` is left out."""
    asks = [Ask(target.host, target.port, "/v1/status", target.tls) for target in found]
    loads = []
    for target, reply in zip(found, await client.get_all(asks, seconds), strict=True):
        if reply is not None and reply[0] == 200:
            try:
                load = load_of(orjson.loads(reply[1]), target.role)
            except orjson.JSONDecodeError:
                continue
            if load is not None:
                loads.append(load)
    return loads
