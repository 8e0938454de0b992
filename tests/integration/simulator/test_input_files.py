"""The simulated binaries check the files they read as MindIE's do (supervisor_pd/simulator/files.py):
MindIE-Motor Util.cpp PathCheck/CheckFileSecurity for the Controller and Coordinator, MindIE-LLM
ParamChecker::ReadJsonFile/FileUtils::IsFileValid for the Server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor_pd.simulator.files import motor_config_rules, motor_read_error, server_read_error
from tests.simstack import wait_until


def planned(folder: Path, name: str = "ms_controller.json", mode: int = 0o640) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("{}")
    path.chmod(mode)
    return path


def test_motor_accepts_what_supervisor_pd_writes(tmp_path: Path) -> None:
    assert motor_read_error(str(planned(tmp_path / "conf")), 0o640, True) is None


@pytest.mark.parametrize("folder", ["has space", "a+b", "ünï"])
def test_motor_refuses_a_path_outside_its_characters_even_unchecked(tmp_path: Path, folder: str) -> None:
    path = planned(tmp_path / folder)
    assert "outside [a-zA-Z0-9_./~-]" in (motor_read_error(str(path), 0o777, False) or "")


def test_motor_refuses_dot_dot_long_paths_and_links(tmp_path: Path) -> None:
    path = planned(tmp_path / "conf")
    assert motor_read_error(str(tmp_path / "conf" / ".." / "conf" / path.name), 0o640, True) is not None
    deep = tmp_path / ("d" * 200) / ("e" * 60)
    assert "maximum allowed length of 256" in (motor_read_error(str(planned(deep)), 0o640, True) or "")
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert "symbolic link" in (motor_read_error(str(link), 0o777, False) or "")


def test_motor_mode_and_owner_unless_switched_off_for_a_path_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wide = planned(tmp_path / "conf", mode=0o644)
    assert "required no greater than 640" in (motor_read_error(str(wide), *motor_config_rules(True)) or "")
    monkeypatch.setenv("MINDIE_CHECK_INPUTFILES_PERMISSION", "0")
    assert motor_read_error(str(wide), *motor_config_rules(True)) is None
    # The default path (no variable naming the file) is checked whatever the switch says.
    assert motor_read_error(str(wide), *motor_config_rules(False)) is not None


def test_the_server_refuses_a_wide_mode_even_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # FileUtils::IsFileValid returns false on a bad mode or owner in both branches of its switch.
    monkeypatch.setenv("MINDIE_CHECK_INPUTFILES_PERMISSION", "0")
    assert server_read_error(str(planned(tmp_path, "config1.json", 0o640))) is None
    assert "required no greater than 640" in (server_read_error(str(planned(tmp_path, "c.json", 0o664))) or "")
    assert "not a regular file" in (server_read_error(str(tmp_path / "absent.json")) or "")


def test_a_controller_given_a_group_writable_config_does_not_start(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    os.chmod(stack.out / "ms_controller.json", 0o660)
    process = stack.start_controller()
    assert process.wait(20) == 1
    wait_until(lambda: "required no greater than 640" in stack.log("controller"), what="the refusal")
