"""The preflight report: exit codes, downgrades, the refusal `run` raises."""

import pytest

from supervisor_pd.doctor.report import CHECKS, Check, Report, Status, downgrade, ordered
from supervisor_pd.errors import InputError


def report(*statuses: tuple[str, Status]) -> Report:
    return Report(ordered(Check(name, status, f"{name} seen", f"{name} fix") for name, status in statuses))


def test_exit_codes_follow_the_worst_check() -> None:
    assert report(("shm", Status.PASS), ("npu", Status.PASS)).exit_code == 0
    assert report(("shm", Status.WARN), ("npu", Status.PASS)).exit_code == 1
    assert report(("shm", Status.WARN), ("npu", Status.FAIL)).exit_code == 2


def test_checks_are_printed_in_a_fixed_order_with_the_fix_of_what_is_not_passing() -> None:
    text = report(("shm", Status.FAIL), ("npu", Status.PASS), ("jemalloc", Status.WARN)).text()
    lines = text.splitlines()
    assert lines[0] == "preflight: 1 passed, 1 warning(s), 1 failure(s)"
    assert [line.split()[1] for line in lines[1:] if not line.lstrip().startswith("fix:")] == [
        "npu",
        "shm",
        "jemalloc",
    ]
    assert "fix: shm fix" in text and "fix: jemalloc fix" in text and "npu fix" not in text


def test_the_refusal_names_the_first_failed_check_and_how_many_more() -> None:
    refusal = report(("weights", Status.FAIL), ("shm", Status.FAIL), ("npu", Status.PASS)).refusal()
    assert isinstance(refusal, InputError)
    assert refusal.where == "preflight check weights"
    assert refusal.problem.startswith("weights seen; weights fix")
    assert "1 more failed check" in refusal.problem
    assert report(("shm", Status.WARN)).refusal() is None


def test_a_named_check_fails_only_as_a_warning() -> None:
    checks = [Check("shm", Status.FAIL, "small"), Check("links", Status.FAIL, "down")]
    kept = downgrade(checks, "shm")
    assert [(c.id, c.status, c.downgraded) for c in kept] == [
        ("shm", Status.WARN, True),
        ("links", Status.FAIL, False),
    ]
    assert {c.status for c in downgrade(checks, " all ")} == {Status.WARN}
    assert downgrade(checks, "") == tuple(checks)


def test_an_unknown_check_name_is_refused_naming_the_variable() -> None:
    with pytest.raises(InputError) as caught:
        downgrade([], "shm,nonsense")
    assert caught.value.where == "SUPERVISOR_PD_DOCTOR_WARN"
    assert "'nonsense' is not a check" in caught.value.problem
    assert all(name in caught.value.problem for name in CHECKS)


def test_json_has_every_field() -> None:
    document = report(("shm", Status.WARN)).as_json()
    assert document["status"] == "warn" and document["exit_code"] == 1
    assert document["checks"][0] == {
        "id": "shm",
        "title": CHECKS["shm"],
        "status": "warn",
        "seen": "shm seen",
        "fix": "shm fix",
        "source": "",
        "downgraded": False,
    }
