"""/metrics: children's text relabelled into one label set; supervisor_pd's own families."""

from __future__ import annotations

import platform

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from supervisor_pd import __version__
from supervisor_pd.api.childmetrics import Family, Scraped, Target, merge, relabel, render
from supervisor_pd.api.metrics import make_registry
from supervisor_pd.runtime.snapshot import snapshot
from supervisor_pd.runtime.states import RestartCause, Serving
from tests.unit.runtime.fakes import Stack
from tests.unit.runtime.test_npuwatch import ready_stack

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
clashing{role="worker",process="x"} 1
"""


def merged(*targets: tuple[dict[str, str], str]) -> dict[str, list]:  # type: ignore[type-arg]
    families: dict[str, Family] = {}
    for labels, text in targets:
        relabel(text, labels, families)
    rendered = "".join(render(name, family) for name, family in families.items())
    found: dict[str, list] = {}  # type: ignore[type-arg]
    for family in text_string_to_metric_families(rendered):
        found.setdefault(family.name, []).extend(family.samples)
    return found


def test_every_sample_gets_the_target_labels_and_families_stay_whole() -> None:
    one = {"component": "server", "process": "server-1", "role": "prefill"}
    two = {"component": "server", "process": "server-2", "role": "decode"}
    found = merged((one, SERVER_TEXT), (two, SERVER_TEXT))
    running = found["num_requests_running"]
    assert [(s.labels["process"], s.labels["role"], s.value) for s in running] == [
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
    labels = {"component": "server", "process": "server-1", "role": "prefill"}
    sample = merged((labels, SERVER_TEXT))["clashing"][0]
    assert sample.labels == {**labels, "exported_role": "worker", "exported_process": "x"}


def test_blank_lines_comments_and_odd_text_do_not_break_the_scrape() -> None:
    text = "\n# just a comment\n# HELP lonely\n\nsome_metric 1 1700000000000\n"
    found = merged(({"component": "coordinator", "process": "coordinator", "role": ""}, text))
    assert found["some_metric"][0].value == 1
    assert found["some_metric"][0].timestamp is not None


def test_totals_sum_every_series_of_a_metric() -> None:
    text = (
        'num_requests_waiting{a="1"} 2\nnum_requests_waiting{a="2"} 3\nnum_requests_waiting_other 100\n'
        "num_requests_running 4\nnum_requests_waiting garbage\n"
    )
    totals = {"num_requests_waiting": 0.0, "num_requests_running": 0.0}
    relabel(text, {"component": "server", "process": "s", "role": "r"}, {}, totals)
    assert totals == {"num_requests_waiting": 5.0, "num_requests_running": 4.0}


# --- supervisor_pd's own families ------------------------------------------------------------------


def own_samples(stack: Stack) -> dict[str, list[Sample]]:
    registry = make_registry(lambda: snapshot(stack.engine, stack.fx.clock))
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def test_restarts_are_counted_by_cause_every_cause_shown_from_the_start() -> None:
    stack = ready_stack()
    restarts = own_samples(stack)["supervisor_pd_process_restarts_total"]
    causes = {cause.value for cause in RestartCause}
    assert {s.labels["cause"] for s in restarts if s.labels["process"] == "server-1"} == causes
    assert all(s.value == 0 for s in restarts)
    stack.exit("server-1")
    after = {
        s.labels["cause"]: s.value
        for s in own_samples(stack)["supervisor_pd_process_restarts_total"]
        if s.labels["process"] == "server-1"
    }
    assert after == {**dict.fromkeys(causes, 0.0), "crash": 1.0}
    view = snapshot(stack.engine, stack.fx.clock)
    (server,) = [p for p in view.processes if p.name == "server-1"]
    assert sum(after.values()) == server.restarts


def test_each_process_has_exactly_one_serving_state_and_when_it_began() -> None:
    stack = ready_stack()
    stack.exit("server-1")
    found = own_samples(stack)
    view = snapshot(stack.engine, stack.fx.clock)
    for process in view.processes:
        states = [s for s in found["supervisor_pd_process_serving_state"] if s.labels["process"] == process.name]
        assert {s.labels["state"] for s in states} == {word.value for word in Serving}
        assert [s.labels["state"] for s in states if s.value == 1] == [process.serving.value]
        assert {s.labels["component"] for s in states} == {process.kind.value}
        (since,) = [
            s
            for s in found["supervisor_pd_process_serving_since_timestamp_seconds"]
            if s.labels["process"] == process.name
        ]
        assert since.value == process.serving_since
    serving = {s.labels["process"]: s.labels["state"] for s in found["supervisor_pd_process_serving_state"] if s.value}
    assert serving["server-1"] == "down"
    assert serving["server-2"] == "role-ready"


def test_build_info_and_the_process_and_platform_collectors() -> None:
    found = own_samples(ready_stack())
    (info,) = found["supervisor_pd_build_info"]
    assert info.labels == {"version": __version__, "python": platform.python_version()}
    assert info.value == 1
    assert found["process_cpu_seconds_total"][0].value > 0
    assert found["process_resident_memory_bytes"][0].value > 0
    assert found["python_info"][0].labels["version"] == platform.python_version()


def test_children_scrapes_are_reported_per_target_and_nothing_is_called_up() -> None:
    found = [
        Target({"component": "server", "process": "server-1", "role": "prefill"}, "u"),
        Target({"component": "coordinator", "process": "coordinator", "role": ""}, "u"),
    ]
    text = merge(found, [Scraped(SERVER_TEXT, 0.25), Scraped(None, 1.0)])
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert "up" not in families
    up = {s.labels["process"]: s.value for s in families["supervisor_pd_child_scrape_up"].samples}
    assert up == {"server-1": 1.0, "coordinator": 0.0}
    seconds = {s.labels["process"]: s.value for s in families["supervisor_pd_child_scrape_duration_seconds"].samples}
    assert seconds == {"server-1": 0.25, "coordinator": 1.0}
    for name in ("supervisor_pd_child_scrape_up", "num_requests_running"):
        for sample in families[name].samples:
            assert set(sample.labels) >= {"component", "process", "role"}
    (running,) = families["supervisor_pd_service_requests_running"].samples
    assert running.value == 3
