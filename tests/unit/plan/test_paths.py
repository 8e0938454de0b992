"""The output paths MindIE's Controller and Coordinator accept (MindIE-Motor Util.cpp PathCheck)."""

from __future__ import annotations

import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.plan.paths import MAX_LENGTH, check_motor_path


@pytest.mark.parametrize(
    "path", ["/var/lib/supervisor-pd/conf/ms_controller.json", "~/a_b.c-d/x.json", "/" + "a" * 255]
)
def test_paths_motor_reads(path: str) -> None:
    check_motor_path(path, "SUPERVISOR_PD_OUTPUT_DIR")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/tmp/has space/ms_controller.json", "' '"),
        ("/data/../conf/ms_controller.json", "'..'"),
        ("/data/konfiguráció/x.json", "'á'"),
        ("/data/a+b/x.json", "'+'"),
        ("/" + "a" * MAX_LENGTH, "257 characters"),
    ],
)
def test_paths_motor_refuses_name_the_setting(path: str, words: str) -> None:
    with pytest.raises(InputError) as raised:
        check_motor_path(path, "SUPERVISOR_PD_OUTPUT_DIR")
    assert "SUPERVISOR_PD_OUTPUT_DIR" in str(raised.value) and words in str(raised.value)
