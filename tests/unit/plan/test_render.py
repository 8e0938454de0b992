"""The plan as people read it: every value whole (wrapped, never cut)."""

from __future__ import annotations

from pathlib import Path

from supervisor_pd.plan.model import Plan
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.render import WIDTH, plan_text
from supervisor_pd.settings import Settings
from tests import factories
from tests.factories import FakeChecker

DEEP = Path("/var/lib/" + "/".join(f"level-{i}" for i in range(20)) + "/conf")  # a 180-character folder


def plan_for(settings: Settings) -> Plan:
    return make_plan(factories.facts(factories.chips(8, per_node=4)), factories.inputs(), settings, FakeChecker())


def test_a_written_value_is_shown_whole_however_long() -> None:
    text = plan_text(plan_for(Settings(output_dir=DEEP)), str(DEEP), written=False)
    ranktable = f"{DEEP}/global_ranktable.json"
    assert len(ranktable) > WIDTH
    assert any(line.split()[:1] == [ranktable] for line in text.splitlines())  # a line of its own, whole
    assert "..." not in text.split("Settings written")[1].split("\n\n")[0]


def test_long_settings_lines_wrap_at_the_width_and_keep_every_word() -> None:
    text = plan_text(plan_for(Settings()), "/out", written=False)
    section = text.split("Settings written (single-container PD needs them)\n")[1].split("\n\n")[0]
    lines = section.splitlines()
    assert all(len(line) <= WIDTH for line in lines if " " in line.strip())
    continued = [line for line in lines if line.startswith("      ")]
    assert continued, "the ClusterD reason is longer than a line"
    joined = " ".join(line.strip() for line in lines)
    assert "withheld from it too)" in joined and "never starts its ClusterD client" in joined
