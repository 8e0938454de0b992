"""Two simulated supervisor_pd pods behind the endpoint picker (tests/picker.py), under load, while
one pod's Server is killed and a pod is drained: the scenario of tests/e2e/test_scale_out.py and
bench/scale_out_bench.py.

Every request is streamed to the pod the picker chooses. An attempt is **accepted** when the pod
answered 200 and began the stream; it is then **completed** when the stream ends with a
finish_reason or `[DONE]`, and **lost** otherwise (`told`: it ended with an error event; else it
was cut or just ended). An attempt that is not accepted (connection refused, an error status
before the stream began: the 503 of a draining pod, the 502 of a Coordinator whose prefill Server
died under the request) is **refused**: nothing was generated, so the client asks the picker
again, as a gateway's retry policy does. A request completes when one of its attempts does; it
**failed** when every attempt was refused until the client gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from tests.picker import Picker, Pod
from tests.superstack import SupervisorRun

# 10 ms a token, so that a request stays open over a scrape or two; the timestamps date the
# supervisor's "service: ready -> ..." lines, the moment each /readyz fell.
STACK_ENV = {
    "SUPERVISOR_PD_SIM_TPOT_MS": "10",
    "SUPERVISOR_PD_LOG_TIMESTAMPS": "true",
    "SUPERVISOR_PD_COORDINATOR_QUARANTINE_SECONDS": "0.5",
}
# Under one 64-character prefix block as the EPP hashes chat messages (tests/picker.py): the
# prefix-cache scorer it leaves out would score 0 everywhere.
CONTENT = "scale out"
RETRY_PAUSE = 0.02
UNREADY = re.compile(r"^(\S+Z) supervisor \| (?:warning: )?service: \w+ -> (degraded|draining)", re.M)


@dataclass
class Attempt:
    pod: str
    chosen: float  # wall-clock time of the picker's choice
    ended: float
    status: int  # 0: no answer
    outcome: str  # completed, lost, refused
    detail: str = ""
    told: bool = False  # lost with an error event: the client knows


@dataclass
class Request:
    number: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        kinds = {attempt.outcome for attempt in self.attempts}
        if "lost" in kinds:
            return "lost"
        return "completed" if "completed" in kinds else "failed"


@dataclass
class Fault:
    kind: str  # kill (SIGKILL of a prefill Server's process group) or drain (SIGTERM to the supervisor)
    pod: str
    injected: float  # wall clock, just before the signal
    unready: float = 0.0  # the supervisor's "service: ready -> degraded|draining" line
    back: float | None = None  # kill: the picker saw the pod ready again
    open: int = 0  # requests open on the pod when the signal was sent
    exit_code: int | None = None  # drain: the supervisor's exit code
    drain_seconds: float | None = None


def ending(body: bytes) -> tuple[str, str]:
    """How a streamed reply ended: completed, error (an error event) or cut; and what it said."""
    done = False
    for event in body.split(b"\n\n"):
        data = event.strip().removeprefix(b"data:").strip()
        if data == b"[DONE]":
            done = True
            continue
        with contextlib.suppress(ValueError):
            parsed = json.loads(data)
            if isinstance(parsed, dict) and "error" in parsed:
                return "error", data[:200].decode(errors="replace")
            for choice in parsed.get("choices", []) if isinstance(parsed, dict) else []:
                done = done or bool(choice.get("finish_reason"))
    return ("completed", "") if done else ("cut", f"stream ended without finish_reason ({len(body)} bytes)")


class Load:
    """`streams` workers, each keeping one request open through the picker until stopped."""

    def __init__(self, picker: Picker, streams: int, max_tokens: int, give_up: float = 20.0) -> None:
        self.picker = picker
        self.streams = streams
        self.give_up = give_up
        self.payload = json.dumps(
            {"messages": [{"role": "user", "content": CONTENT}], "max_tokens": max_tokens, "stream": True}
        ).encode()
        self.open: Counter[str] = Counter()
        self.requests: list[Request] = []
        self.stopping = asyncio.Event()
        self._numbers = iter(range(1 << 30))
        picker.in_flight = lambda pod: self.open[pod]

    def done(self) -> int:
        return sum(1 for request in self.requests if request.attempts and request.attempts[-1].outcome != "refused")

    async def run(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._worker(session) for _ in range(self.streams)))

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        while not self.stopping.is_set():
            request = Request(next(self._numbers))
            self.requests.append(request)
            await self._one(session, request)

    async def _one(self, session: aiohttp.ClientSession, request: Request) -> None:
        deadline = time.monotonic() + self.give_up
        while time.monotonic() < deadline:
            pod = self.picker.choose()
            if pod is None:  # no candidate: wait for the next read
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.picker.changed.wait(), deadline - time.monotonic())
                continue
            attempt = await self._attempt(session, pod, request.number)
            request.attempts.append(attempt)
            if attempt.outcome != "refused":
                return
            await asyncio.sleep(RETRY_PAUSE)

    async def _attempt(self, session: aiohttp.ClientSession, pod: Pod, number: int) -> Attempt:
        chosen = time.time()
        self.open[pod.name] += 1
        status, body, accepted = 0, b"", False
        headers = {"Content-Type": "application/json", "X-Request-Id": f"scale-out-{number}"}
        try:
            async with session.post(pod.url + "/v1/chat/completions", data=self.payload, headers=headers) as response:
                status = response.status
                accepted = status == 200 and "event-stream" in response.headers.get("Content-Type", "")
                async for chunk in response.content.iter_any():
                    body += chunk
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            if accepted:
                return Attempt(pod.name, chosen, time.time(), status, "lost", f"{type(exc).__name__}: {exc}"[:200])
            return Attempt(pod.name, chosen, time.time(), status, "refused", f"{type(exc).__name__}: {exc}"[:200])
        finally:
            self.open[pod.name] -= 1
        if not accepted:
            return Attempt(pod.name, chosen, time.time(), status, "refused", body[:200].decode(errors="replace"))
        kind, detail = ending(body)
        if kind == "completed":
            return Attempt(pod.name, chosen, time.time(), status, "completed")
        return Attempt(pod.name, chosen, time.time(), status, "lost", detail, told=kind == "error")


def log_times(run: SupervisorRun) -> list[tuple[float, str]]:
    """Each "service: ready -> degraded|draining" line of a pod's supervisor: (wall time, new phase)."""
    return [
        (datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp(), phase)
        for stamp, phase in UNREADY.findall(run.log())
    ]


def prefill_server(run: SupervisorRun) -> str:
    processes = run.status().get("processes", [])
    return next(p["name"] for p in processes if p.get("role") == "prefill" and p.get("ready"))


@dataclass
class Outcome:
    load: Load
    picker: Picker
    faults: list[Fault]
    seconds: float


@dataclass
class Scenario:
    """`steps`: ("kill" | "drain", pod index), in order; between two, `gap` more requests end. A drained
    pod is replaced by `spawn()` when it is given (scale-out after scale-in), else it stays gone."""

    runs: list[SupervisorRun]
    steps: list[tuple[str, int]]
    interval: float = 0.25
    streams: int = 16
    max_tokens: int = 24
    gap: int = 60
    requests: int = 300
    spawn: Callable[[], SupervisorRun] | None = None
    timeout: float = 30.0

    def pods(self) -> list[Pod]:
        return [Pod(f"pod-{i}", f"http://127.0.0.1:{run.ports.api}") for i, run in enumerate(self.runs)]

    async def run(self) -> Outcome:
        picker = Picker(self.pods(), self.interval)
        load = Load(picker, self.streams, self.max_tokens)
        by_name = {pod.name: run for pod, run in zip(picker.pods, self.runs, strict=True)}
        faults: list[Fault] = []
        began = time.monotonic()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            scraping = asyncio.ensure_future(picker.run(session))
            try:
                await picker.wait(lambda: len(picker.candidates()) == len(picker.pods), self.timeout, "every pod")
                loading = asyncio.ensure_future(load.run(session))
                live = [pod.name for pod in picker.pods]
                for kind, index in self.steps:
                    target = load.done() + self.gap
                    await picker.wait(lambda t=target: load.done() >= t, self.timeout, f"{target} requests")
                    name = live[index]
                    fault = await self._inject(kind, name, by_name[name])
                    fault.open = load.open[name]
                    faults.append(fault)
                    await picker.wait(lambda n=name: not picker.views[n].ready, self.timeout, f"{name} unready")
                    if kind == "kill":
                        await picker.wait(lambda n=name: picker.views[n].ready, self.timeout, f"{name} back")
                        fault.back = time.time()
                    else:
                        await self._drained(fault, by_name[name])
                        if self.spawn is not None:
                            run = await asyncio.to_thread(self._start_new)
                            pod = Pod(f"pod-{len(by_name)}", f"http://127.0.0.1:{run.ports.api}")
                            by_name[pod.name] = run
                            picker.add(pod)
                            live[index] = pod.name
                            await picker.wait(lambda n=pod.name: picker.views[n].ready, self.timeout, "the new pod")
                await picker.wait(lambda: load.done() >= self.requests, self.timeout * 2, f"{self.requests} requests")
                load.stopping.set()
                await asyncio.wait_for(loading, self.timeout)
            finally:
                load.stopping.set()
                scraping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scraping
        for fault in faults:
            times = [at for at, _ in log_times(by_name[fault.pod]) if at >= fault.injected - 0.002]
            fault.unready = min(times) if times else float("nan")
        return Outcome(load, picker, faults, time.monotonic() - began)

    def _start_new(self) -> SupervisorRun:
        assert self.spawn is not None
        run = self.spawn()
        self.runs.append(run)
        run.wait_ready(timeout=60)
        return run

    async def _inject(self, kind: str, name: str, run: SupervisorRun) -> Fault:
        assert run.process is not None
        if kind == "kill":
            server = await asyncio.to_thread(prefill_server, run)
            pid = run.pid_of(server)
            fault = Fault(kind, name, time.time())
            os.killpg(pid, signal.SIGKILL)
            return fault
        fault = Fault(kind, name, time.time())
        run.process.send_signal(signal.SIGTERM)
        return fault

    async def _drained(self, fault: Fault, run: SupervisorRun) -> None:
        assert run.process is not None
        fault.exit_code = await asyncio.to_thread(run.process.wait, self.timeout)
        fault.drain_seconds = time.time() - fault.injected


def summary(outcome: Outcome) -> dict[str, Any]:
    """The figures both the test and the bench report."""
    counts = Counter(request.outcome for request in outcome.load.requests)
    attempts = [attempt for request in outcome.load.requests for attempt in request.attempts]
    return {
        "requests": sum(counts.values()),
        **{kind: counts.get(kind, 0) for kind in ("completed", "lost", "failed")},
        "attempts": len(attempts),
        "refused": sum(1 for attempt in attempts if attempt.outcome == "refused"),
        "seconds": round(outcome.seconds, 2),
    }
