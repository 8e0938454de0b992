"""Plans for the simulated hosts compared with hand-checked expected files (tests/data/expected).

Discovery runs the simulated host tools for real; ports are checked by a fake that reports every
port free, so the expected files do not depend on what else listens on the test machine.
"""

import os
from pathlib import Path

import orjson
import pytest

from supervisor_pd.confdir import load_inputs
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.render import plan_text
from supervisor_pd.platform.discover import discover
from supervisor_pd.settings import load_settings
from tests.factories import FakeChecker
from tests.helpers import DATA, SAMPLE_CONF, sim_env, sim_host

EXPECTED = DATA / "expected"
OUTPUT = "/var/lib/supervisor-pd/conf"


@pytest.mark.parametrize("profile", ["800i-a2", "800i-a3", "800i-a2-4npu"])
def test_plan_matches_the_expected_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str) -> None:
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in sim_env(tmp_path, sim_host(tmp_path, profile)).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(conf_dir=SAMPLE_CONF, output_dir=Path(OUTPUT))
    plan = make_plan(discover(settings), load_inputs(settings), settings, FakeChecker())
    expected_dir = EXPECTED / profile
    expected_names = sorted(path.name for path in expected_dir.glob("*.json"))
    assert sorted(planned.name for planned in plan.files) == expected_names
    for planned in plan.files:
        expected = orjson.loads((expected_dir / planned.name).read_bytes())
        assert orjson.loads(planned.content) == expected, planned.name
    summary = (expected_dir / "plan.txt").read_text()
    assert plan_text(plan, OUTPUT, written=True).replace(str(SAMPLE_CONF), "<samples>") == summary
