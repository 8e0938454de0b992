"""Refused requests are counted, and logged at most once per interval per reason."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from supervisor_pd.api.refusals import INTERVAL, Refusals


def test_a_burst_of_refusals_is_one_line_then_a_count() -> None:
    lines: list[str] = []
    now = [100.0]
    registry = CollectorRegistry()
    refusals = Refusals(lines.append, registry, clock=lambda: now[0])
    for _ in range(1000):
        refusals.note("unauthorized", "control request refused: no valid token")
    refusals.note("malformed", "bad request line")
    assert lines == ["control request refused: no valid token", "bad request line"]
    now[0] += INTERVAL
    refusals.note("unauthorized", "control request refused: no valid token")
    assert lines[-1] == f"control request refused: no valid token (and 999 more like it in the last {INTERVAL:g} s)"
    assert registry.get_sample_value("supervisor_pd_requests_refused_total", {"reason": "unauthorized"}) == 1001
