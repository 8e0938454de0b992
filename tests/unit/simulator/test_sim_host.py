"""build_sim_host: an identical host is reused, any difference is rebuilt in a sibling folder and
swapped in whole; the old host stays complete until then."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from supervisor_pd.simulator import host as host_module
from supervisor_pd.simulator.host import MARKER, build_sim_host, host_files
from supervisor_pd.simulator.profiles import PROFILES


def listing(folder: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under `folder`: kind, mode and content (what a rebuild must restore)."""
    entries: dict[str, tuple[str, int, bytes]] = {}
    for path in folder.rglob("*"):
        info = path.lstat()
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        content = path.read_bytes() if kind == "file" else b""
        entries[str(path.relative_to(folder))] = (kind, info.st_mode & 0o7777, content)
    return entries


@pytest.mark.parametrize(
    "damage",
    [
        lambda root: (root / "bin" / "npu-smi").unlink(),  # incomplete
        lambda root: (root / "bin" / "stale-tool").write_text("#!/bin/sh\n"),  # a file the profile has not
        lambda root: (root / "dev" / "davinci0").chmod(0o600),  # a mode
        lambda root: (root / "etc").mkdir(),  # a folder the profile has not
        lambda root: (root / "run").rmdir(),
    ],
    ids=["file missing", "extra file", "mode", "extra folder", "no run folder"],
)
def test_any_difference_is_rebuilt(damage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    profile = PROFILES["800i-a2"]
    root = tmp_path / "host"
    build_sim_host(profile, root)
    reference = listing(root)
    damage(root)
    damaged = root.stat().st_ino
    build_sim_host(profile, root)
    assert listing(root) == reference
    assert root.stat().st_ino != damaged  # swapped in whole, not patched in place


def test_another_profile_is_replaced_whole(tmp_path: Path) -> None:
    root = tmp_path / "host"
    build_sim_host(PROFILES["800i-a2-4npu"], root)
    assert (root / "etc" / "hccn.conf").is_file()
    build_sim_host(PROFILES["800i-a3"], root)
    build_sim_host(PROFILES["800i-a3"], tmp_path / "fresh")
    fresh = {name: entry for name, entry in listing(tmp_path / "fresh").items() if not name.startswith("bin/")}
    assert {name: entry for name, entry in listing(root).items() if not name.startswith("bin/")} == fresh
    assert not (root / "etc").exists()
    assert json.loads((root / MARKER).read_text())["name"] == "800i-a3"


def test_another_interpreter_rebuilds_the_wrappers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "host"
    build_sim_host(PROFILES["800i-a2"], root)
    monkeypatch.setattr(sys, "executable", "/opt/other/python3")
    build_sim_host(PROFILES["800i-a2"], root)
    assert "/opt/other/python3 -m supervisor_pd.simulator.hosttools npu-smi" in (root / "bin" / "npu-smi").read_text()


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2 exchange", "two renames"])
def test_the_old_host_stays_whole_until_the_new_one_is_swapped_in(
    exchange: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "host"
    build_sim_host(PROFILES["800i-a2"], root)
    old, new = host_files(PROFILES["800i-a2"], root), host_files(PROFILES["800i-a3"], root)
    swap = host_module._swap_into_place
    seen: list[Path] = []

    def checked_swap(staging: Path, target: Path) -> None:
        # Just before the swap: the reader's host is the old one, complete; the new one is whole
        # in a sibling folder.
        assert target == root
        assert staging.parent == root.parent
        assert host_module._matches(root, old)
        assert host_module._matches(staging, new)
        seen.append(staging)
        swap(staging, target)

    monkeypatch.setattr(host_module, "_swap_into_place", checked_swap)
    if not exchange:
        monkeypatch.setattr(host_module, "_exchange", lambda first, second: False)
    build_sim_host(PROFILES["800i-a3"], root)
    assert seen
    assert host_module._matches(root, new)
    assert [path.name for path in tmp_path.iterdir()] == ["host"]
