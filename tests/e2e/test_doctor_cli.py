"""`supervisor-pd doctor`, and the same checks as `run`'s gate and in `plan`, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import base_env, run_cli
from tests.simstack import FAST_KNOBS, Ports, free_base, make_conf


def setup(tmp_path: Path, **extra: str) -> tuple[Path, dict[str, str]]:
    ports = Ports(free_base())
    conf = make_conf(tmp_path / "conf", ports)
    env = base_env(tmp_path)
    env.update(FAST_KNOBS, SUPERVISOR_PD_PORT_BASE=str(ports.servers), SUPERVISOR_PD_API_PORT=str(ports.api))
    env["SUPERVISOR_PD_API_HOST"] = "127.0.0.1"
    env.update(extra)
    return conf, env


def test_doctor_on_the_simulated_a2_passes_and_writes_nothing(tmp_path: Path) -> None:
    conf, env = setup(tmp_path)
    done = run_cli(["doctor", "--simulate", "800i-a2", "--conf-dir", str(conf)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("preflight: 10 passed, 0 warning(s), 0 failure(s)\n")
    assert not (tmp_path / "state" / "conf").exists()


def test_run_refuses_to_start_on_a_failed_check_before_anything_is_written(tmp_path: Path) -> None:
    conf, env = setup(tmp_path, MINDIE_MODEL_WEIGHT_PATH=str(tmp_path / "no-weights"))
    done = run_cli(["run", "--simulate", "800i-a2", "--conf-dir", str(conf)], env)
    assert done.returncode == 2
    assert done.stderr == (
        f"supervisor-pd: error: preflight check weights: {tmp_path}/no-weights (server-1, server-2, server-3, "
        f"server-4): {tmp_path}/no-weights does not exist; mount the weights there, or name them in "
        "modelWeightPath or MINDIE_MODEL_WEIGHT_PATH\n"
    )
    assert not (tmp_path / "state" / "conf").exists()  # no config written, so nothing was started
    assert not (tmp_path / "state" / "servers").exists()


def test_a_site_that_knows_better_can_start_anyway(tmp_path: Path) -> None:
    conf, env = setup(tmp_path, SUPERVISOR_PD_DOCTOR_WARN="weights", MINDIE_MODEL_WEIGHT_PATH=str(tmp_path / "w"))
    done = run_cli(["doctor", "--json", "--simulate", "800i-a2", "--conf-dir", str(conf)], env)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    weights = next(check for check in report["checks"] if check["id"] == "weights")
    assert (weights["status"], weights["downgraded"]) == ("warn", True)


def test_plan_prints_the_preflight_report_and_its_json_carries_it(tmp_path: Path) -> None:
    conf, env = setup(tmp_path, MINDIE_MODEL_WEIGHT_PATH=str(tmp_path / "no-weights"))
    text = run_cli(["plan", "--dry-run", "--simulate", "800i-a2", "--conf-dir", str(conf)], env)
    assert text.returncode == 0, text.stderr  # a plan is still a plan; `run` is what refuses
    assert "\npreflight: 8 passed, 0 warning(s), 1 failure(s)\n" in text.stdout
    assert "  FAIL  weights " in text.stdout
    done = run_cli(["plan", "--dry-run", "--json", "--simulate", "800i-a2", "--conf-dir", str(conf)], env)
    preflight = json.loads(done.stdout)["preflight"]
    assert preflight["status"] == "fail" and preflight["exit_code"] == 2


def test_a_bad_doctor_setting_is_refused_as_an_input(tmp_path: Path) -> None:
    conf, env = setup(tmp_path, SUPERVISOR_PD_DOCTOR_WARN="shm,nope")
    done = run_cli(["doctor", "--simulate", "800i-a2", "--conf-dir", str(conf)], env)
    assert done.returncode == 2
    assert done.stdout.startswith("preflight: 0 passed, 0 warning(s), 1 failure(s)\n  FAIL  inputs          ")
    assert "SUPERVISOR_PD_DOCTOR_WARN: 'nope' is not a check" in done.stdout
