"""The dashboards and alerts of configs/observability, proven in a real Prometheus.

One simulated stack and one Prometheus (Debian's `prometheus` package, run as a plain process on
a loopback port from the allocator, storage in the test's folder, scrape and rule evaluation
every second) for the whole module. Prometheus scrapes the stack's /metrics; a few streamed chat
completions go through the stack's port, one first so the latency histograms' series exist and
the rest after Prometheus has seen them, so that rate() has an increase to work on.

How data is proven:
- every dashboard query runs through Prometheus's HTTP query API (Grafana's variables replaced:
  `$job`/`$instance` by `.+`, `$__rate_interval` by `1m`) and must return at least one sample
  with a finite value, waited for with a deadline (the children's part of /metrics is cached
  for 2 s);
- an alert expression is a condition that is false on a healthy stack, so it returns nothing as
  written. Each is evaluated with every comparison turned into its `bool` form (`x > 1` becomes
  `x > bool 1`): a comparison then keeps every series it compares, with value 0 or 1, while
  `and`/`unless`/`on`/`ignoring` still match on labels. A non-empty answer proves that each
  series the alert reads exists with the labels its matching assumes; nothing fires;
- Prometheus loads alerts.yaml itself, evaluates every rule without an error, and no alert fires.

Without the prometheus binary the module is skipped; promtool's own checks are in
tests/integration/test_observability_configs.py.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from tests.simstack import free_base, http, wait_until
from tests.superstack import SupervisorRun, running
from tests.unit.api.test_metrics_names import naming_problems, promtool_problems

OBSERVABILITY = REPO / "configs" / "observability"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
ALERTS = OBSERVABILITY / "alerts.yaml"
JOB = "supervisor-pd"
GRAFANA = {"$__rate_interval": "1m", "$job": ".+", "$instance": ".+"}
PROMETHEUS = shutil.which("prometheus")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (Debian: apt-get install prometheus; .ci/run does it)"
)
yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")


class Prometheus:
    def __init__(self, folder: Path, target: str) -> None:
        self.port = free_base(1)
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(json.dumps(config))
        self.log = folder / "prometheus.log"
        assert PROMETHEUS is not None
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def get(self, path: str, **params: str) -> Any:
        code, body = http("GET", f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=10)
        assert code == 200, (path, params, code, body[:500])
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def stream(run: SupervisorRun) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True}
    code, data = run.api("POST", "/v1/chat/completions", body, headers={"Content-Type": "application/json"})
    assert code == 200 and data.startswith(b"data: "), (code, data[:200])


def count_seen(prom: Prometheus) -> float:
    found = prom.query(f'sum(supervisor_pd_time_to_first_token_seconds_count{{job="{JOB}"}})')
    return float(found[0]["value"][1]) if found else 0.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SupervisorRun, Prometheus]]:
    folder = tmp_path_factory.mktemp("prometheus")
    with running(folder / "stack") as run:
        prom = Prometheus(folder, f"127.0.0.1:{run.ports.api}")
        try:
            wait_until(lambda: http("GET", f"{prom.url}/-/ready")[0] == 200, 30, what="prometheus ready")
            wait_until(lambda: prom.query(f'up{{job="{JOB}"}} == 1'), 20, what="the stack scraped")
            stream(run)
            wait_until(lambda: count_seen(prom) >= 1, 20, what="the first request's TTFT seen")
            for _ in range(3):
                stream(run)
            wait_until(lambda: count_seen(prom) >= 4, 20, what="four requests' TTFT seen")
            yield run, prom
        finally:
            prom.stop()


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return found


def grafana_free(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not replace: {expr}"
    return expr


def finite(found: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in found)


def test_every_dashboard_query_returns_data(stack: tuple[SupervisorRun, Prometheus]) -> None:
    _, prom = stack
    queries = dashboard_queries()
    assert len(queries) >= 30
    for title, expr in queries:
        query = grafana_free(expr)
        wait_until(lambda q=query: finite(prom.query(q)), 20, interval=0.25, what=f"data for {title}: {query}")


def test_the_dashboard_variables_find_the_target(stack: tuple[SupervisorRun, Prometheus]) -> None:
    run, prom = stack
    variables = {item["name"]: item for item in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for name, value in (("job", JOB), ("instance", f"127.0.0.1:{run.ports.api}")):
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name]["definition"])
        assert match is not None and match.group(2) == name
        selector = match.group(1).replace('=~"$job"', '=~".+"')
        assert value in prom.get(f"/api/v1/label/{name}/values", **{"match[]": selector})


COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)")


def with_bool_comparisons(expr: str) -> str:
    """`expr` with every comparison outside label matchers and strings in its `bool` form."""
    out: list[str] = []
    depth = 0
    quote = ""
    index = 0
    while index < len(expr):
        char = expr[index]
        if quote:
            out.append(char)
            if char == "\\":
                out.append(expr[index + 1])
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
            out.append(char)
        elif char == "{":
            depth += 1
            out.append(char)
        elif char == "}":
            depth -= 1
            out.append(char)
        elif depth == 0 and (match := COMPARISON.match(expr, index)):
            out.append(match.group(1) + " bool")
            index = match.end()
            continue
        else:
            out.append(char)
        index += 1
    return "".join(out)


def test_the_bool_rewrite_leaves_label_matchers_alone() -> None:
    expr = 'a{x!="1",y=~"b|c"} == 0 and ignoring (r) b{z="a>b"} >= 3'
    assert with_bool_comparisons(expr) == 'a{x!="1",y=~"b|c"} == bool 0 and ignoring (r) b{z="a>b"} >= bool 3'
    assert with_bool_comparisons("x > bool 1") == "x > bool 1"


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_expression_finds_its_series(stack: tuple[SupervisorRun, Prometheus]) -> None:
    _, prom = stack
    rules = alert_rules()
    assert len(rules) >= 5
    for rule in rules:
        query = with_bool_comparisons(rule["expr"])
        found = wait_until(lambda q=query: prom.query(q), 20, interval=0.25, what=f"{rule['alert']}: {query}")
        # A healthy stack: every series compares false.
        assert all(float(sample["value"][1]) == 0 for sample in found), (rule["alert"], found)


def test_prometheus_evaluates_every_rule_and_nothing_fires(stack: tuple[SupervisorRun, Prometheus]) -> None:
    _, prom = stack

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [rule for group in prom.get("/api/v1/rules")["groups"] for rule in group["rules"]]
        done = all(not rule["lastEvaluation"].startswith("0001-") for rule in rules)
        return rules if rules and done else None

    rules = wait_until(evaluated, 20, interval=0.25, what="every rule evaluated")
    assert sorted(rule["name"] for rule in rules) == sorted(rule["alert"] for rule in alert_rules())
    for rule in rules:
        assert rule["health"] == "ok", rule
    assert [alert for alert in prom.get("/api/v1/alerts")["alerts"] if alert["state"] == "firing"] == []


def test_the_live_metrics_follow_the_naming_rules(stack: tuple[SupervisorRun, Prometheus]) -> None:
    run, prom = stack
    code, body = run.api("GET", "/metrics")
    assert code == 200
    text = body.decode()
    assert naming_problems(text) == []
    assert promtool_problems(text) == []
    # What Prometheus stored has no family named up but its own.
    jobs = {sample["metric"].get("job") for sample in prom.query("up")}
    assert jobs == {JOB}
    assert prom.query('{__name__="up", component!=""}') == []
