"""An endpoint-picking client for the two-pod proof (tests/e2e/test_scale_out.py, bench/scale_out_bench.py).

It uses only what docs/scale-out.md documents of a supervisor_pd pod, and decides as the Gateway API
Inference Extension's endpoint picker (EPP) does with its default configuration, at v1.5.0 (paths in
kubernetes-sigs/gateway-api-inference-extension):

- **Membership** follows readiness: the EPP keeps a pod in its datastore only while the pod's Ready
  condition is true and it is not being deleted (pkg/epp/controller/pod_reconciler.go:92,
  pkg/epp/util/pod/pod.go:23-36). Here the picker reads `/readyz` itself at every scrape: a pod is
  a candidate while its last answer was 200. (Kubernetes adds the kubelet's probe period and the
  watch in between; a deleted pod leaves at once.)
- **Scores**, default profile (pkg/epp/config/loader/defaults.go:46-103): `queue-scorer` weight 2,
  `kv-cache-utilization-scorer` weight 2, `prefix-cache-scorer` weight 3, summed per endpoint after
  clamping each score to [0, 1] (pkg/epp/scheduling/scheduler_profile.go:151-173, 194-202):
  - queue: `(max - q) / (max - min)` over the candidates' waiting-queue sizes, 1 for all when they
    are equal (pkg/epp/framework/plugins/scheduling/scorer/queuedepth/queue.go:78-107); the size is
    the gauge truncated to an integer (pkg/epp/framework/plugins/datalayer/extractor/metrics/extractor.go:118);
  - KV cache: `1 - usage` (pkg/epp/framework/plugins/scheduling/scorer/kvcacheutilization/kvcache_utilization.go:76-82);
  - prefix cache: left out. It scores the share of the prompt's 64-character blocks (16 tokens x 4
    characters, pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix/types.go:91,112)
    that the EPP itself sent to a pod before; a prompt shorter than one block has no blocks and
    scores 0 everywhere (approximateprefix/hashing.go:57-60, scorer/prefix/plugin.go:99-111). The
    proof's prompts are shorter than one block, so leaving it out changes no choice.
- **Pick**: the highest total, ties broken at random (a shuffle, then a stable sort:
  pkg/epp/framework/plugins/scheduling/picker/max_score_picker.go:85-96), one endpoint.
- **Metrics**: the EPP reads `--total-queued-requests-metric` and `--kv-cache-usage-percentage-metric`
  (pkg/epp/server/options.go:105-107) every `--refresh-metrics-interval` (50 ms by default,
  options.go:102), each pod on its own; a scrape that lacks a gauge keeps the last value
  (extractor.go:114-139). Here the interval is the caller's (0.2-0.5 s in the proof, so that a
  shift within one interval is a claim worth testing), for /readyz and /metrics alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

QUEUE_METRIC = "supervisor_pd_pod_requests_waiting"
RUNNING_METRIC = "supervisor_pd_pod_requests_running"  # recorded, not scored: the default profile does not
KV_METRIC = "supervisor_pd_pod_kv_cache_usage_ratio"
QUEUE_WEIGHT = 2.0  # defaults.go:47
KV_WEIGHT = 2.0  # defaults.go:48


@dataclass(frozen=True)
class Pod:
    name: str
    url: str  # http://host:port of supervisor_pd's one port


@dataclass
class View:
    """What the picker knows of a pod: its last /readyz answer and the last value of each gauge."""

    ready: bool = False
    waiting: float | None = None
    running: float | None = None
    kv: float | None = None


@dataclass(frozen=True)
class Probe:
    """One /readyz read (wall-clock times, so they compare with other processes' logs)."""

    pod: str
    started: float
    ended: float  # its answer was applied at once
    status: int  # 0: no answer
    late: float  # how much more than one interval after the previous read it began

    @property
    def ready(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Scrape:
    """One /metrics read, with the caller's count of requests open on the pod when it began."""

    pod: str
    started: float
    ended: float
    ready: bool  # the pod was a candidate from the start of this read to its end
    waiting: float | None
    running: float | None
    kv: float | None
    in_flight: int


@dataclass(frozen=True)
class Choice:
    at: float
    pod: str
    scores: dict[str, float]


def gauges(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The unlabelled samples of `names` in a Prometheus text exposition."""
    wanted = set(names)
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name in wanted and rest:
            with contextlib.suppress(ValueError):
                found[name] = float(rest.split()[0])
    return found


def queue_scores(waiting: dict[str, int]) -> dict[str, float]:
    low, high = min(waiting.values()), max(waiting.values())
    if low == high:
        return dict.fromkeys(waiting, 1.0)
    return {pod: (high - size) / (high - low) for pod, size in waiting.items()}


def kv_scores(usage: dict[str, float]) -> dict[str, float]:
    return {pod: 1.0 - value for pod, value in usage.items()}


def clamp(score: float) -> float:
    return min(1.0, max(0.0, score))


def score(views: dict[str, View]) -> dict[str, float]:
    """The default profile's weighted sum over `views` (every one a candidate). A gauge never read
    counts as 0, as an endpoint's metrics start zeroed in the EPP."""
    waiting = {pod: int(view.waiting or 0) for pod, view in views.items()}
    usage = {pod: view.kv or 0.0 for pod, view in views.items()}
    queue, kv = queue_scores(waiting), kv_scores(usage)
    return {pod: QUEUE_WEIGHT * clamp(queue[pod]) + KV_WEIGHT * clamp(kv[pod]) for pod in views}


def pick(scores: dict[str, float], rng: random.Random) -> str | None:
    if not scores:
        return None
    order = list(scores)
    rng.shuffle(order)
    return max(order, key=lambda pod: scores[pod])  # max keeps the first of equals: the shuffle breaks ties


@dataclass
class Picker:
    """Each pod's /readyz and /metrics are read every `interval`, on fixed schedules of their own (the
    EPP learns readiness from the Kubernetes API, apart from its metrics scrapes: a slow /metrics must
    not hold back a change of membership)."""

    pods: list[Pod]
    interval: float
    in_flight: Callable[[str], int] = lambda _pod: 0
    seed: int = 0
    timeout: float = 2.0
    views: dict[str, View] = field(init=False)
    probes: list[Probe] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.views = {pod.name: View() for pod in self.pods}
        self._rng = random.Random(self.seed)
        self.changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def add(self, pod: Pod) -> None:
        """A new pod (scale-out): a candidate from the first /readyz that answers 200."""
        self.pods.append(pod)
        self.views[pod.name] = View()
        if self._session is not None:
            self._follow(self._session, pod)

    def candidates(self) -> dict[str, View]:
        return {name: view for name, view in self.views.items() if view.ready}

    def choose(self) -> Pod | None:
        """One pick, recorded; None when no pod is a candidate."""
        views = self.candidates()
        scores = score(views)
        name = pick(scores, self._rng)
        if name is None:
            return None
        self.choices.append(Choice(time.time(), name, scores))
        return next(pod for pod in self.pods if pod.name == name)

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Follow every pod until cancelled."""
        self._session = session
        for pod in self.pods:
            self._follow(session, pod)
        try:
            await asyncio.Event().wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _follow(self, session: aiohttp.ClientSession, pod: Pod) -> None:
        self._tasks.append(asyncio.ensure_future(self._every(lambda late: self._probe(session, pod, late))))
        self._tasks.append(asyncio.ensure_future(self._every(lambda _late: self._scrape(session, pod))))

    async def _every(self, step: Callable[[float], Awaitable[None]]) -> None:
        """`step(late)` every interval; `late`: how much more than one interval after the previous
        step this one began (a slow step or a busy event loop)."""
        previous: float | None = None
        while True:
            began = time.monotonic()
            await step(0.0 if previous is None else max(0.0, began - previous - self.interval))
            previous = began
            await asyncio.sleep(max(0.0, began + self.interval - time.monotonic()))

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def _probe(self, session: aiohttp.ClientSession, pod: Pod, late: float) -> None:
        started = time.time()
        status = 0
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError):
            async with session.get(pod.url + "/readyz", timeout=aiohttp.ClientTimeout(total=self.timeout)) as reply:
                status = reply.status
                await reply.read()
        probe = Probe(pod.name, started, time.time(), status, late)
        self.probes.append(probe)
        self.views[pod.name].ready = probe.ready
        self._notify()

    async def _scrape(self, session: aiohttp.ClientSession, pod: Pod) -> None:
        started, open_then, ready_then = time.time(), self.in_flight(pod.name), self.views[pod.name].ready
        text = ""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError):
            async with session.get(pod.url + "/metrics", timeout=aiohttp.ClientTimeout(total=self.timeout)) as reply:
                if reply.status == 200:
                    text = await reply.text()
        values = gauges(text, (QUEUE_METRIC, RUNNING_METRIC, KV_METRIC))
        view = self.views[pod.name]
        scrape = Scrape(
            pod.name,
            started,
            time.time(),
            ready_then and view.ready,
            values.get(QUEUE_METRIC),
            values.get(RUNNING_METRIC),
            values.get(KV_METRIC),
            open_then,
        )
        self.scrapes.append(scrape)
        # A gauge missing from a scrape keeps its last value, as in the EPP.
        view.waiting = scrape.waiting if scrape.waiting is not None else view.waiting
        view.running = scrape.running if scrape.running is not None else view.running
        view.kv = scrape.kv if scrape.kv is not None else view.kv
        self._notify()

    async def wait(self, check: Callable[[], bool], within: float, what: str) -> None:
        """Wait, read by read, until `check()` holds."""
        deadline = time.monotonic() + within
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {within} s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
