"""Two simulated supervisor_pd pods behind an endpoint picker that decides as the Gateway API Inference
Extension's default one does (tests/picker.py), from each pod's /readyz and pod gauges only.

Under a steady load of streamed chat completions, one pod's prefill Server is SIGKILLed (its
/readyz falls; it comes back), then the other pod is drained (SIGTERM). The run is made once for
the module (tests/scaleout.py); each test checks one claim of docs/scale-out.md "Proof on one
machine" against its records. `python bench/scale_out_bench.py` runs the same with more load.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scaleout import STACK_ENV, Outcome, Scenario
from tests.scaleout_figures import losses, report, shifts, tracking
from tests.superstack import SupervisorRun

INTERVAL = 0.25


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Outcome, dict[str, Any]]]:
    runs = [SupervisorRun(tmp_path_factory.mktemp(f"pod{i}"), env=STACK_ENV) for i in range(2)]
    try:
        for run in runs:
            run.start()
        for run in runs:
            run.wait_ready(timeout=60)
        scenario = Scenario(runs, [("kill", 0), ("drain", 1)], interval=INTERVAL, requests=300)
        result = asyncio.run(scenario.run())
        yield result, report(result)
    finally:
        for run in runs:
            run.cleanup()


def show(figures: dict[str, Any]) -> str:
    return json.dumps(figures, indent=1)


def test_no_request_is_lost_but_those_the_killed_server_carried(outcome: tuple[Outcome, dict[str, Any]]) -> None:
    """Lost: accepted by a pod (200, the stream began) and not completed. The only ones are requests
    the pod had accepted before its prefill Server was SIGKILLed and that went through that Server:
    MindIE's Coordinator ends each of them with an error event when the instance leaves (see
    tests/scaleout_figures.py `losses`). None lost otherwise, none silently, none refused until the
    client gave up: attempts refused in the moments before the picker saw a pod fall went elsewhere."""
    result, figures = outcome
    lost = losses(result)
    assert figures["requests"] >= 300, show(figures)
    assert lost.other == 0, show(figures)
    assert lost.silent == 0, show(figures)
    assert lost.at_kill <= lost.open_at_kill, show(figures)
    assert figures["failed"] == 0, show(figures)
    assert figures["completed"] + figures["lost"] == figures["requests"], show(figures)
    pods = {a.pod for r in result.load.requests for a in r.attempts if a.outcome == "completed"}
    assert pods == {"pod-0", "pod-1"}, show(figures)


def test_the_drain_finished_what_the_pod_had_accepted(outcome: tuple[Outcome, dict[str, Any]]) -> None:
    result, figures = outcome
    (drain,) = [f for f in result.faults if f.kind == "drain"]
    assert drain.exit_code == 0, show(figures)
    accepted = [a for r in result.load.requests for a in r.attempts if a.pod == drain.pod and a.outcome != "refused"]
    late = [a for a in accepted if a.chosen >= drain.unready]
    assert all(a.outcome == "completed" for a in accepted), show(figures)
    assert not late, f"{len(late)} requests accepted by {drain.pod} after it began draining"


def test_routing_shifts_within_one_scrape_interval(outcome: tuple[Outcome, dict[str, Any]]) -> None:
    """For the kill and the drain, from the moment the pod's /readyz fell (its supervisor's
    `service: ready -> ...` line): the picker's next /readyz read began within one interval (plus
    `probe_late`, how much more than an interval after the previous read it began: a busy event
    loop), and the pod was never chosen once that read's answer was in. So its last choice came
    within one interval and one read of the fall."""
    result, figures = outcome
    found = shifts(result)
    assert [s.kind for s in found] == ["kill", "drain"], show(figures)
    for s in found:
        assert not math.isnan(s.unready), f"no 'service: ready -> ...' line for {s.pod}"
        assert s.last_choice is None or s.last_choice <= s.noticed, show(figures)
        assert s.probe_started - s.unready <= INTERVAL + s.probe_late + 0.002, show(figures)
        assert s.shift <= INTERVAL + s.probe_seconds + s.probe_late + 0.002, show(figures)


def test_the_killed_pod_came_back_into_rotation(outcome: tuple[Outcome, dict[str, Any]]) -> None:
    result, figures = outcome
    (kill,) = [f for f in result.faults if f.kind == "kill"]
    assert kill.back is not None
    assert any(c.pod == kill.pod and c.at > kill.back for c in result.picker.choices), show(figures)


def test_the_gauges_track_load(outcome: tuple[Outcome, dict[str, Any]]) -> None:
    """At every scrape, the pod's waiting + running gauges and its KV-cache use follow the requests
    the client has open on it; when one pod carries more than the other, its gauges are higher."""
    result, figures = outcome
    track = tracking(result)
    assert track.samples >= 20, show(figures)
    assert track.load_vs_requests > 0.8, show(figures)
    assert track.load_vs_kv > 0.5, show(figures)
    assert track.pairs >= 5, show(figures)
    assert track.agree_requests >= 0.8 * track.pairs, show(figures)


def test_only_candidates_were_chosen(outcome: tuple[Outcome, dict[str, Any]]) -> None:
    """No choice named a pod whose last /readyz read (as the picker had it then) was not 200."""
    result, _ = outcome
    for choice in result.picker.choices:
        before = [p for p in result.picker.probes if p.pod == choice.pod and p.ended <= choice.at]
        assert before and before[-1].ready, f"{choice.pod} chosen at {choice.at} while not a candidate"
