"""Logical NPU ids inside a container, as the simulated Server resolves them (server/devices.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor_pd.simulator.server.devices import visible_devices


def host_with(tmp_path: Path, *physical: int) -> Path:
    (tmp_path / "dev").mkdir()
    for npu in physical:
        (tmp_path / "dev" / f"davinci{npu}").write_text("")
    (tmp_path / "dev" / "davinci_manager").write_text("")
    return tmp_path


def test_a_container_given_npus_4_to_7_counts_them_from_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISOR_PD_SIM_HOST", str(host_with(tmp_path, 7, 4, 5, 6)))
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)
    assert visible_devices() == [4, 5, 6, 7]
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1,3")
    assert visible_devices() == [5, 7]  # renumbered again from 0 in the process


def test_without_a_simulated_host_logical_is_physical(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPERVISOR_PD_SIM_HOST", raising=False)
    assert visible_devices() is None
