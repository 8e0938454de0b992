"""What a scale-out run shows (tests/scaleout.py): how soon routing left a pod that turned unready,
what happened to the requests sent to it meanwhile, and how the pods' gauges followed their load."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from tests.picker import Probe, Scrape
from tests.scaleout import Attempt, Fault, Outcome


@dataclass(frozen=True)
class Shift:
    kind: str
    pod: str
    unready: float  # wall clock: the supervisor's line, the moment its /readyz fell
    probe_started: float  # the picker's first /readyz read that found the pod unready
    probe_seconds: float  # how long that read took (the picker applied its answer at its end)
    probe_late: float  # how much more than one interval after the previous read it began
    last_choice: float | None  # the last choice of the pod before it was back (None: none near the fault)
    chosen_before: int  # choices of the pod in the interval before `unready` (0: routing had gone elsewhere)
    chosen_after: int  # choices of the pod at or after `unready`
    refused_after: int  # of those, attempts the pod refused (the client asked the picker again)
    completed_after: int  # of those, attempts it completed

    @property
    def noticed(self) -> float:
        return self.probe_started + self.probe_seconds

    @property
    def shift(self) -> float:
        """From the pod's /readyz falling to the picker's last choice of it; 0 when it was not
        chosen after it fell."""
        if self.last_choice is None:
            return 0.0
        return max(0.0, self.last_choice - self.unready)


def shifts(outcome: Outcome) -> list[Shift]:
    picker = outcome.picker
    found = []
    for fault in outcome.faults:
        probe = first_unready(picker.probes, fault)
        end = fault.back if fault.back is not None else math.inf
        window = [c.at for c in picker.choices if c.pod == fault.pod and fault.injected - 5 <= c.at < end]
        since = [
            a
            for request in outcome.load.requests
            for a in request.attempts
            if a.pod == fault.pod and fault.unready <= a.chosen < end
        ]
        found.append(
            Shift(
                fault.kind,
                fault.pod,
                fault.unready,
                probe.started,
                probe.ended - probe.started,
                probe.late,
                max(window) if window else None,
                sum(1 for at in window if fault.unready - picker.interval <= at < fault.unready),
                len(since),
                sum(1 for a in since if a.outcome == "refused"),
                sum(1 for a in since if a.outcome == "completed"),
            )
        )
    return found


def first_unready(probes: list[Probe], fault: Fault) -> Probe:
    return next(p for p in probes if p.pod == fault.pod and p.ended >= fault.injected and not p.ready)


@dataclass(frozen=True)
class Tracking:
    samples: int  # scrapes of a ready pod with every gauge
    load_vs_requests: float  # Pearson r: requests open on the pod vs. waiting + running
    load_vs_kv: float  # the same vs. KV-cache use
    pairs: int  # scrapes of two ready pods in the same interval whose open requests differed by 2 or more
    agree_requests: int  # of those, pairs where waiting + running was higher on the busier pod
    agree_kv: int  # ... where KV-cache use was higher on the busier pod
    busiest: dict[str, float]  # the gauges at the scrape with the most open requests
    full_while_ready: list[Scrape]  # /readyz said 200 yet the gauges said "not ready" (KV cache 1): left out


def tracking(outcome: Outcome) -> Tracking:
    read = [s for s in outcome.picker.scrapes if s.ready and None not in (s.waiting, s.running, s.kv)]
    # The pod's gauges say "go elsewhere" with a full KV cache while it is not ready; /readyz is read
    # just before /metrics, so a pod that fell or came back in between shows both answers.
    full = [s for s in read if (s.kv or 0) >= 1.0]
    usable = [s for s in read if (s.kv or 0) < 1.0]
    load = [float(s.in_flight) for s in usable]
    requests = [float((s.waiting or 0) + (s.running or 0)) for s in usable]
    kv = [float(s.kv or 0) for s in usable]
    interval = outcome.picker.interval
    first = min((s.started for s in usable), default=0.0)
    slots: dict[int, list[Scrape]] = {}
    for s in usable:
        slots.setdefault(int((s.started - first) / interval), []).append(s)
    pairs = agree_requests = agree_kv = 0
    for both in slots.values():
        if len(both) != 2 or both[0].pod == both[1].pod or abs(both[0].in_flight - both[1].in_flight) < 2:
            continue
        busy, idle = sorted(both, key=lambda s: s.in_flight, reverse=True)
        pairs += 1
        agree_requests += (busy.waiting or 0) + (busy.running or 0) > (idle.waiting or 0) + (idle.running or 0)
        agree_kv += (busy.kv or 0) > (idle.kv or 0)
    top = max(usable, key=lambda s: s.in_flight, default=None)
    busiest = (
        {} if top is None else {"open": top.in_flight, "waiting": top.waiting, "running": top.running, "kv": top.kv}
    )
    return Tracking(
        len(usable), pearson(load, requests), pearson(load, kv), pairs, agree_requests, agree_kv, busiest, full
    )


def pearson(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return float("nan")
    return statistics.correlation(xs, ys)


@dataclass(frozen=True)
class Losses:
    at_kill: int  # accepted by a pod before a Server of it was killed, and cut by that kill
    other: int  # any other: must be none
    silent: int  # lost without an error event: must be none
    open_at_kill: int  # requests open on the killed pods when they were killed


def losses(outcome: Outcome) -> Losses:
    """A SIGKILLed Server takes the requests routed through it: MindIE's Coordinator files each request
    under its prefill and its decode instance (MindIE-Motor request_monitor/RequestMgr.cpp:132-147) and,
    when the Controller drops an instance, ends all of its requests (controller_listener/
    ControllerListener.cpp:702-719), decode half included. Those were accepted while the pod was
    ready; no router can save them. Everything else must complete."""
    kills = [f for f in outcome.faults if f.kind == "kill"]
    at_kill = other = silent = 0
    for request in outcome.load.requests:
        for a in request.attempts:
            if a.outcome != "lost":
                continue
            silent += not a.told
            if any(a.pod == f.pod and a.chosen < f.unready and a.ended > f.injected for f in kills):
                at_kill += 1
            else:
                other += 1
    return Losses(at_kill, other, silent, sum(f.open for f in kills))


def open_at(outcome: Outcome, fault: Fault) -> list[Attempt]:
    """The attempts open on the fault's pod when its signal was sent."""
    return [
        a
        for request in outcome.load.requests
        for a in request.attempts
        if a.pod == fault.pod and a.chosen < fault.injected < a.ended
    ]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(outcome: Outcome) -> dict[str, Any]:
    """Everything as one JSON-able document (the bench prints it; a failing test shows it)."""
    from tests.scaleout import summary

    found = shifts(outcome)
    track = tracking(outcome)
    lost = losses(outcome)
    return {
        **summary(outcome),
        "lost_at_kill": lost.at_kill,
        "lost_other": lost.other,
        "lost_silent": lost.silent,
        "open_at_kill": lost.open_at_kill,
        "interval": outcome.picker.interval,
        "probes": len(outcome.picker.probes),
        "probe_seconds_max": round(max((p.ended - p.started for p in outcome.picker.probes), default=0), 4),
        "probe_late_max": round(max((p.late for p in outcome.picker.probes), default=0), 4),
        "scrapes": len(outcome.picker.scrapes),
        "scrape_seconds_p50": round(quantile([s.ended - s.started for s in outcome.picker.scrapes], 0.5), 4),
        "scrape_seconds_max": round(max((s.ended - s.started for s in outcome.picker.scrapes), default=0), 4),
        "faults": [
            {
                "kind": s.kind,
                "pod": s.pod,
                "shift": round(s.shift, 4),
                "notice": round(s.noticed - s.unready, 4),
                "probe_seconds": round(s.probe_seconds, 4),
                "probe_late": round(s.probe_late, 4),
                "chosen_before": s.chosen_before,
                "chosen_after": s.chosen_after,
                "refused_after": s.refused_after,
                "completed_after": s.completed_after,
            }
            for s in found
        ],
        "drains": [
            {
                "pod": f.pod,
                "exit_code": f.exit_code,
                "seconds": round(f.drain_seconds or 0, 3),
                "open": f.open,
                "open_completed": sum(a.outcome == "completed" for a in open_at(outcome, f)),
                "open_accepted": sum(a.outcome != "refused" for a in open_at(outcome, f)),
            }
            for f in outcome.faults
            if f.kind == "drain"
        ],
        "tracking": {
            "samples": track.samples,
            "r_requests": round(track.load_vs_requests, 3),
            "r_kv": round(track.load_vs_kv, 3),
            "pairs": track.pairs,
            "agree_requests": track.agree_requests,
            "agree_kv": track.agree_kv,
            "busiest": track.busiest,
            "waiting_nonzero": sum(1 for x in outcome.picker.scrapes if x.ready and (x.waiting or 0) > 0),
            "full_while_ready": [
                {"pod": x.pod, "at": x.started, "waiting": x.waiting, "running": x.running}
                for x in track.full_while_ready
            ],
        },
        "lost_detail": [a.detail for r in outcome.load.requests for a in r.attempts if a.outcome == "lost"][:10],
    }
