"""The simulator against the product, end to end through `supervisor-pd plan --simulate`: the
product's ranktable passes the simulated Controller's own loader, and a second run reuses the
simulated host without writing to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor_pd.simulator.controller.ranktable import load_ranktable_file
from supervisor_pd.simulator.profiles import PROFILES
from tests.helpers import base_env, run_cli


def plan(tmp_path: Path, profile: str, output: Path) -> dict:  # type: ignore[type-arg]
    result = run_cli(
        ["plan", "--simulate", profile, "--output", str(output), "--json"], base_env(tmp_path), private=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_product_ranktable_loads_every_planned_server(profile: str, tmp_path: Path) -> None:
    planned = plan(tmp_path, profile, tmp_path / "out")
    controller = json.loads((tmp_path / "out" / "ms_controller.json").read_text())
    loaded = load_ranktable_file(
        tmp_path / "out" / "global_ranktable.json",
        pd_separate=controller["deploy_mode"] != "single_node",
        heterogeneous=controller["is_heterogeneous"],
        default_mgmt_port=str(controller["mindie_server_control_port"]),
    )
    assert loaded.warnings == ()
    assert [int(server["mgmt_port"]) for server in loaded.servers] == [
        server["ports"]["management"] for server in planned["servers"]
    ]
    assert len(loaded.coordinators) == 1
    chips = PROFILES[profile].chips
    assert sum(len(server["device"]) for server in loaded.servers) == len(chips)
    if any(chip.sdid is not None for chip in chips):
        assert set(loaded.super_pods) == {server["server_id"] for server in loaded.servers}


def test_a_second_simulated_plan_reuses_the_host_as_it_is(tmp_path: Path) -> None:
    plan(tmp_path, "800i-a2-4npu", tmp_path / "out1")
    root = tmp_path / "state" / "sim" / "800i-a2-4npu"
    before = {
        str(path.relative_to(root)): (path.lstat().st_ino, path.lstat().st_mtime_ns)
        for path in [root, *root.rglob("*")]
    }
    plan(tmp_path, "800i-a2-4npu", tmp_path / "out2")
    after = {
        str(path.relative_to(root)): (path.lstat().st_ino, path.lstat().st_mtime_ns)
        for path in [root, *root.rglob("*")]
    }
    assert after == before
    assert sorted(path.name for path in root.parent.iterdir()) == ["800i-a2-4npu"]
