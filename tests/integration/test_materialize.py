"""Writing plans: modes, atomic replacement, refusals."""

import os
import stat
from pathlib import Path

import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.materialize import MARKER, materialize
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.settings import Settings
from tests import factories


def plan(conf_dir: str = "/conf", **settings):  # type: ignore[no-untyped-def]
    made = make_plan(
        factories.facts(factories.chips(8, per_node=4)),
        factories.inputs(),
        Settings(**settings),
        factories.FakeChecker(),
    )
    return made.model_copy(update={"conf_dir": conf_dir})


def test_files_and_modes(tmp_path: Path) -> None:
    out = materialize(plan(), tmp_path / "a" / "b" / "out")
    names = sorted(os.listdir(out))
    assert names == sorted(
        [
            MARKER,
            "config1.json",
            "config2.json",
            "config3.json",
            "config4.json",
            "global_ranktable.json",
            "http_client_ctl.json",
            "ms_controller.json",
            "ms_coordinator.json",
        ]
    )
    for name in names:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o640
    for folder in (out, tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert not [p for p in (tmp_path / "a" / "b").iterdir() if p.name.startswith(".out.")]


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        out = materialize(plan(), tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / "config1.json").stat().st_mode) == 0o640


def test_a_new_plan_replaces_the_old_one_whole(tmp_path: Path) -> None:
    out = materialize(plan(api_port=8081), tmp_path / "out")
    inode = out.stat().st_ino
    (out / "config4.json").unlink()  # a damaged previous plan
    out = materialize(plan(api_port=8082), tmp_path / "out")
    assert (out / "config4.json").exists()
    assert out.stat().st_ino != inode
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_foreign_folder_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty and was not written by supervisor-pd"):
        materialize(plan(), out)
    assert os.listdir(out) == ["precious.txt"]


def test_the_input_folder_is_never_the_output(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    with pytest.raises(InputError, match="input config folder"):
        materialize(plan(conf_dir=str(conf)), conf)
    with pytest.raises(InputError, match="input config folder"):
        materialize(plan(conf_dir=str(conf)), tmp_path)


@pytest.mark.parametrize("where", ["file", "proc"])
def test_unwritable_output(tmp_path: Path, where: str) -> None:
    if where == "file":
        blocker = tmp_path / "blocker"
        blocker.write_text("x")
        target = blocker / "out"
    else:
        target = Path("/proc/supervisor-pd-test/out")
    with pytest.raises(InputError) as caught:
        materialize(plan(), target)
    assert caught.value.where == "--output / SUPERVISOR_PD_OUTPUT_DIR"
    assert "cannot be written" in caught.value.problem
    assert not target.exists()
