"""Relabelling children's Prometheus text into one consistent label set."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from supervisor_pd.api.metrics import Family, _render, relabel

SERVER_TEXT = """\
# HELP num_requests_running Number of requests currently running.
# TYPE num_requests_running gauge
num_requests_running{model_name="llama"} 3
# HELP request_success_total Requests that finished.
# TYPE request_success_total counter
request_success_total{model_name="llama"} 7
# HELP e2e_request_latency_seconds Latency.
# TYPE e2e_request_latency_seconds histogram
e2e_request_latency_seconds_bucket{model_name="llama",le="0.5"} 1
e2e_request_latency_seconds_bucket{model_name="llama",le="+Inf"} 2
e2e_request_latency_seconds_sum{model_name="llama"} 1.5
e2e_request_latency_seconds_count{model_name="llama"} 2
bare_metric 4
clashing{role="worker",server="x"} 1
"""


def merged(*targets: tuple[dict[str, str], str]) -> dict[str, list]:  # type: ignore[type-arg]
    families: dict[str, Family] = {}
    for labels, text in targets:
        relabel(text, labels, families)
    rendered = "".join(_render(name, family) for name, family in families.items())
    found: dict[str, list] = {}  # type: ignore[type-arg]
    for family in text_string_to_metric_families(rendered):
        found.setdefault(family.name, []).extend(family.samples)
    return found


def test_every_sample_gets_the_target_labels_and_families_stay_whole() -> None:
    one = {"component": "server", "server": "server-1", "role": "prefill"}
    two = {"component": "server", "server": "server-2", "role": "decode"}
    found = merged((one, SERVER_TEXT), (two, SERVER_TEXT))
    running = found["num_requests_running"]
    assert [(s.labels["server"], s.labels["role"], s.value) for s in running] == [
        ("server-1", "prefill", 3.0),
        ("server-2", "decode", 3.0),
    ]
    assert running[0].labels["model_name"] == "llama"
    histogram = found["e2e_request_latency_seconds"]
    assert len(histogram) == 8  # two buckets, sum and count, for each Server
    assert {s.name for s in histogram} == {
        "e2e_request_latency_seconds_bucket",
        "e2e_request_latency_seconds_sum",
        "e2e_request_latency_seconds_count",
    }
    assert found["request_success"][1].value == 7
    assert found["bare_metric"][0].labels == one


def test_a_child_label_that_clashes_with_ours_is_kept_under_another_name() -> None:
    labels = {"component": "server", "server": "server-1", "role": "prefill"}
    sample = merged((labels, SERVER_TEXT))["clashing"][0]
    assert sample.labels == {**labels, "exported_role": "worker", "exported_server": "x"}


def test_blank_lines_comments_and_odd_text_do_not_break_the_scrape() -> None:
    text = "\n# just a comment\n# HELP lonely\n\nsome_metric 1 1700000000000\n"
    found = merged(({"component": "coordinator", "server": "", "role": ""}, text))
    assert found["some_metric"][0].value == 1
    assert found["some_metric"][0].timestamp is not None


def test_totals_sum_every_series_of_a_metric() -> None:
    text = (
        'num_requests_waiting{a="1"} 2\nnum_requests_waiting{a="2"} 3\nnum_requests_waiting_other 100\n'
        "num_requests_running 4\nnum_requests_waiting garbage\n"
    )
    totals = {"num_requests_waiting": 0.0, "num_requests_running": 0.0}
    relabel(text, {"component": "server", "server": "s", "role": "r"}, {}, totals)
    assert totals == {"num_requests_waiting": 5.0, "num_requests_running": 4.0}
