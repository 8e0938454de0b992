"""activate(): the facts it returns, no process state touched, nothing rewritten when the host is
already there, a changed one rebuilt, and every refusal naming the path and the cause."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import pytest

from supervisor_pd.simulator.activate import SimulatedHost, SimulatorError, activate
from supervisor_pd.simulator.host import MARKER, WEIGHTS
from supervisor_pd.simulator.profiles import PROFILES

TOOLS = {"npu-smi", "lspci", "mindieservice_daemon", "mindie_llm_server", "ms_controller", "ms_coordinator"}


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under `folder` (and the folder itself): inode, mtime and ctime in ns."""
    entries = {".": folder.lstat()}
    for path in folder.rglob("*"):
        entries[str(path.relative_to(folder))] = path.lstat()
    return {name: (info.st_ino, info.st_mtime_ns, info.st_ctime_ns) for name, info in entries.items()}


class Tripwire(MutableMapping[str, str]):
    """Stands in for os.environ: any use fails the test."""

    def _touched(self, *args: object) -> None:
        raise AssertionError(f"os.environ used: {args!r}")

    def __getitem__(self, key: str) -> str:
        self._touched("get", key)
        return ""

    def __setitem__(self, key: str, value: str) -> None:
        self._touched("set", key)

    def __delitem__(self, key: str) -> None:
        self._touched("del", key)

    def __iter__(self) -> Iterator[str]:
        self._touched("iter")
        return iter(())

    def __len__(self) -> int:
        self._touched("len")
        return 0


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_activate_returns_the_facts_and_leaves_the_environment_alone(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dict(os.environ)
    with monkeypatch.context() as patch:
        patch.setattr(os, "environ", Tripwire())
        host = activate(profile, tmp_path / "state")
    assert dict(os.environ) == before

    root = tmp_path / "state" / "sim" / profile
    env = {**PROFILES[profile].env, "MINDIE_MODEL_WEIGHT_PATH": str(root / WEIGHTS)}
    assert host == SimulatedHost(profile=profile, root=root, bin_dir=root / "bin", env=env)
    assert (root / WEIGHTS / "config.json").is_file()
    assert json.loads((root / MARKER).read_text())["name"] == profile
    tools = {path.name for path in host.bin_dir.iterdir() if os.access(path, os.X_OK)}
    assert tools >= TOOLS
    assert ("hccn_tool" in tools) == PROFILES[profile].hccn_tool
    assert "PATH" not in host.env


def test_a_container_profile_names_its_visible_devices_and_every_one_its_weights(tmp_path: Path) -> None:
    weights = {"MINDIE_MODEL_WEIGHT_PATH": str(tmp_path / "sim" / "800i-a2-4npu" / WEIGHTS)}
    assert activate("800i-a2-4npu", tmp_path).env == {"ASCEND_VISIBLE_DEVICES": "4-7", **weights}
    assert activate("800i-a2", tmp_path).env == {
        "MINDIE_MODEL_WEIGHT_PATH": str(tmp_path / "sim" / "800i-a2" / WEIGHTS)
    }


def test_a_second_activate_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = activate("800i-a3", state)
    (first.root / "run" / "server-1.lock").write_text("held\n")  # live state of the simulated processes
    before = snapshot(state)
    again = activate("800i-a3", state)
    assert again == first
    assert snapshot(state) == before  # no file, folder or staging sibling created, rewritten or removed


def test_a_changed_file_is_rebuilt(tmp_path: Path) -> None:
    host = activate("800i-a2", tmp_path)
    cpulist = host.root / "sys/devices/system/node/node0/cpulist"
    cpulist.write_text("0-3\n")
    activate("800i-a2", tmp_path)
    assert cpulist.read_text() == "0-95\n"
    assert sorted(path.name for path in (tmp_path / "sim").iterdir()) == ["800i-a2"]  # no staging left


def test_a_folder_that_is_not_a_simulated_host_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "state" / "sim" / "800i-a2"
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    with pytest.raises(SimulatorError) as caught:
        activate("800i-a2", tmp_path / "state")
    assert str(root) in str(caught.value)
    assert "not a simulated host" in str(caught.value)
    assert snapshot(tmp_path) == before


def test_a_file_in_place_of_the_host_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "sim" / "800i-a2"
    root.parent.mkdir()
    root.write_text("a file\n")
    with pytest.raises(SimulatorError, match="not a simulated host"):
        activate("800i-a2", tmp_path)
    assert root.read_text() == "a file\n"


def test_a_state_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state-file"
    state.write_text("not a folder\n")
    with pytest.raises(SimulatorError) as caught:
        activate("800i-a2", state)
    assert str(caught.value) == f"{state}/sim/800i-a2 cannot hold the simulated host: Not a directory"


def test_an_unknown_profile_is_named(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match=r"sim/800i-b9: no simulated host profile '800i-b9'"):
        activate("800i-b9", tmp_path)
    assert not (tmp_path / "sim").exists()
