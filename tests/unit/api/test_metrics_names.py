"""/metrics by the book: Prometheus's naming rules, checked on a whole exposition.

The exposition is what `MetricsEndpoint` serves: supervisor_pd's registry (every family observed
at least once) followed by the children's text, relabelled, from the simulator's Server metrics
(MindIE's names). `naming_problems` is also used on a running stack's /metrics by
tests/e2e/test_prometheus.py. `promtool check metrics` lints the same text where it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from supervisor_pd.api import podgauges
from supervisor_pd.api.childmetrics import Scraped, Target, merge
from supervisor_pd.api.metrics import MetricsEndpoint
from supervisor_pd.runtime.events import Probe
from supervisor_pd.runtime.probes import Result
from supervisor_pd.runtime.snapshot import snapshot
from supervisor_pd.simulator.server.state import Metrics
from tests.unit.runtime.test_npuwatch import ready_stack

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Series Prometheus writes itself for every scrape (its docs: "Jobs and instances").
RESERVED = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling"}
RESERVED |= {"scrape_series_added"}
# Units that are not the base unit (the naming guide: seconds, bytes, ratios 0..1).
NOT_BASE = {"milliseconds", "ms", "microseconds", "us", "nanoseconds", "ns", "minutes", "hours", "days"}
NOT_BASE |= {"kilobytes", "kb", "kib", "megabytes", "mb", "mib", "gigabytes", "gb", "gib", "bits"}
NOT_BASE |= {"percent", "pct", "perc", "millis", "secs", "sec"}
# Ours: supervisor_pd's families and prometheus_client's process and platform collectors.
OURS = ("supervisor_pd_", "process_", "python_")
# What a process is called on every family that names one (children's samples included).
PROCESS = "process"
OTHER_PROCESS_NAMES = {"server", "proc", "process_name", "instance_name", "child"}
# MindIE-LLM's own names that promtool flags (abbreviated units), exposed as MindIE names them
# (src/server/endpoint/http_wrapper/prometheus_metrics.cpp:134-141); not ours to rename.
MINDIE_LINT = {"avg_prompt_throughput_toks_per_s", "avg_generation_throughput_toks_per_s"}


def type_lines(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            yield name, kind


def naming_problems(text: str) -> list[str]:
    """Every way `text` breaks the rules, one line each (empty: none)."""
    problems: list[str] = []
    kinds: dict[str, str] = {}
    for name, kind in type_lines(text):
        if name in kinds:
            problems.append(f"{name}: family listed twice")
        kinds[name] = kind
        if not NAME.fullmatch(name):
            problems.append(f"{name}: not a valid metric name")
        if name in RESERVED:
            problems.append(f"{name}: a name Prometheus reserves for its own scrape series")
        if kind == "counter" and not name.endswith("_total"):
            problems.append(f"{name}: a counter whose name does not end in _total")
        if kind != "counter" and name.endswith("_total"):
            problems.append(f"{name}: a {kind} whose name ends in _total")
        if name.startswith(OURS):
            words = set(name.split("_"))
            if words & NOT_BASE:
                problems.append(f"{name}: not in base units ({', '.join(sorted(words & NOT_BASE))})")
            if "timestamp" in words and not name.endswith("_timestamp_seconds"):
                problems.append(f"{name}: a timestamp not in _timestamp_seconds")
            if name.endswith("_info") and kind != "gauge":
                problems.append(f"{name}: an _info family that is a {kind}, not a gauge")
    helps = {line.split(None, 3)[2] for line in text.splitlines() if line.startswith("# HELP ")}
    problems += [f"{name}: no HELP" for name in kinds if name.startswith(OURS) and name not in helps]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not NAME.fullmatch(sample.name) or sample.name in RESERVED:
                problems.append(f"{sample.name}: not a valid or a reserved sample name")
            for label in sample.labels:
                if not LABEL.fullmatch(label) or label.startswith("__"):
                    problems.append(f"{sample.name}: label {label!r} is not a valid label name")
            if set(sample.labels) & OTHER_PROCESS_NAMES:
                problems.append(
                    f"{sample.name}: names a process with {sorted(set(sample.labels) & OTHER_PROCESS_NAMES)}"
                )
            if "component" in sample.labels and PROCESS not in sample.labels:
                problems.append(f"{sample.name}: has component but no {PROCESS} label")
            if family.type == "info" and sample.value != 1:
                problems.append(f"{sample.name}: an _info sample that is not 1")
    return sorted(set(problems))


def exposition() -> str:
    """What /metrics serves on a ready simulated stack, every family of ours observed once."""
    stack = ready_stack()
    stack.exit("server-1")
    endpoint = MetricsEndpoint(None, lambda: snapshot(stack.engine, stack.fx.clock), 1.0, 2.0)  # type: ignore[arg-type]
    proxy = endpoint.proxy
    path = "/v1/chat/completions"
    proxy.requests.labels(path, "200").inc()
    proxy.cut.labels(path).inc()
    for histogram in (proxy.ttft, proxy.tpot, proxy.duration):
        histogram.labels(path).observe(0.1)
    endpoint.observe_health("server-2", Probe.LIVE, Result(True, "ok", seconds=0.002))
    server = Metrics().render("llama", 1, 2, 0.25)
    found = [
        Target({"component": "server", "process": "server-2", "role": "prefill"}, "http://server-2"),
        Target({"component": "server", "process": "server-1", "role": "decode"}, "http://server-1"),
        Target({"component": "coordinator", "process": "coordinator", "role": ""}, "http://coordinator"),
    ]
    children = merge(found, [Scraped(server, 0.01), Scraped(None, 1.0), Scraped(server, 0.02)])
    pod = podgauges.render(podgauges.PodGauges(2, 5, 0.25)).decode()
    return generate_latest(endpoint.registry).decode() + pod + children


def test_the_exposition_follows_the_naming_rules() -> None:
    text = exposition()
    assert naming_problems(text) == []
    kinds = dict(type_lines(text))
    # The families the rules are about are there to be checked.
    for name in (
        "supervisor_pd_process_restarts_total",
        "supervisor_pd_process_serving_state",
        "supervisor_pd_build_info",
        "supervisor_pd_child_scrape_up",
        "supervisor_pd_pod_kv_cache_usage_ratio",
        "process_cpu_seconds_total",
        "python_info",
        "request_received_total",
    ):
        assert name in kinds, name


def test_the_rules_catch_what_they_are_about() -> None:
    bad = "\n".join(
        [
            "# TYPE up gauge",
            'up{component="server",process="server-1"} 1',
            "# HELP supervisor_pd_restarts Restarts.",
            "# TYPE supervisor_pd_restarts counter",
            "supervisor_pd_restarts 1",
            "# HELP supervisor_pd_ready_total Ready.",
            "# TYPE supervisor_pd_ready_total gauge",
            "supervisor_pd_ready_total 1",
            "# HELP supervisor_pd_check_milliseconds Checks.",
            "# TYPE supervisor_pd_check_milliseconds gauge",
            'supervisor_pd_check_milliseconds{server="server-1"} 3',
            "# TYPE supervisor_pd_last_timestamp gauge",
            'supervisor_pd_last_timestamp{component="server"} 3',
            "",
        ]
    )
    found = "\n".join(naming_problems(bad))
    for expected in (
        "up: a name Prometheus reserves",
        "supervisor_pd_restarts: a counter whose name does not end in _total",
        "supervisor_pd_ready_total: a gauge whose name ends in _total",
        "supervisor_pd_check_milliseconds: not in base units (milliseconds)",
        "supervisor_pd_check_milliseconds: names a process with ['server']",
        "supervisor_pd_last_timestamp: a timestamp not in _timestamp_seconds",
        "supervisor_pd_last_timestamp: no HELP",
        "supervisor_pd_last_timestamp: has component but no process label",
    ):
        assert expected in found, expected


def promtool_problems(text: str) -> list[str]:
    """`promtool check metrics` on `text`: its lint lines, MindIE's own names left out."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode in (0, 3), lines  # 3: lint problems, listed; anything else: it could not read it
    return [line for line in lines if line.split()[0] not in MINDIE_LINT]


def test_promtool_finds_nothing_wrong_with_our_names() -> None:
    assert promtool_problems(exposition()) == []


def test_promtool_would_flag_a_counter_without_total() -> None:
    bad = "# HELP supervisor_pd_restarts Restarts.\n# TYPE supervisor_pd_restarts counter\nsupervisor_pd_restarts 1\n"
    assert any("_total" in line for line in promtool_problems(bad))
