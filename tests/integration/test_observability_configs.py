"""configs/observability: the alert rules pass promtool, every alert has a unit test that fires
and one that does not, and the dashboard is well formed and names only metrics /metrics has.

Evaluating all of it against a running stack is tests/e2e/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import REPO
from tests.unit.api.test_metrics_names import exposition

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")

OBSERVABILITY = REPO / "configs" / "observability"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
ALERTS = OBSERVABILITY / "alerts.yaml"
ALERTS_TEST = OBSERVABILITY / "alerts_test.yaml"
# A name directly before a label matcher or a range: a metric selector.
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
OURS = re.compile(r"\b(?:supervisor_pd|process|python)_[a-z0-9_]+")
PROMQL_WORDS = {"rate", "increase", "sum", "by", "without", "on", "ignoring", "and", "or", "unless", "bool"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run does it)")
    return subprocess.run([tool, *args], cwd=OBSERVABILITY, capture_output=True, text=True, timeout=60)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def expressions() -> list[str]:
    found = [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]
    return found + [rule["expr"] for rule in alerts()]


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", ALERTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    done = promtool("test", "rules", ALERTS_TEST.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [case for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"] for case in test["alert_rule_test"]]
    for rule in alerts():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no test where it does not fire"


def test_every_alert_says_why_and_how_bad() -> None:
    for rule in alerts():
        assert rule["alert"].startswith("SupervisorPd"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "supervisor-pd"
    assert board["id"] is None, "an exported id makes Grafana's import overwrite another dashboard"
    variables = [item["name"] for item in board["templating"]["list"]]
    assert variables == ["datasource", "job", "instance"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["description"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            # Every query keeps to the chosen targets.
            assert 'job=~"$job"' in target["expr"] and 'instance=~"$instance"' in target["expr"], target["expr"]


def test_the_configs_name_only_metrics_that_metrics_serves() -> None:
    served = {sample.name for family in text_string_to_metric_families(exposition()) for sample in family.samples}
    for expr in expressions():
        names = {name for name in SELECTOR.findall(expr) if name not in PROMQL_WORDS} | set(OURS.findall(expr))
        assert names, expr
        assert names <= served, f"{expr}: {sorted(names - served)} not on /metrics"
