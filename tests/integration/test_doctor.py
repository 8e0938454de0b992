"""`supervisor-pd doctor` against simulated hosts that differ from the shipped ones in one fact
each: real subprocesses of the CLI and of the simulated host tools. The sample configs' fixed
ports are planned in a private network namespace, so a stack running here does not disturb them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from supervisor_pd.simulator.host import WEIGHTS, build_sim_host
from supervisor_pd.simulator.profiles import PROFILES
from tests.helpers import SAMPLE_CONF, run_cli, sim_env


def doctor(
    tmp_path: Path, profile: str = "800i-a2", extra: dict[str, str] | None = None, **changes: Any
) -> tuple[int, dict[str, Any]]:
    host = build_sim_host(replace(PROFILES[profile], **changes), tmp_path / "host")
    env = sim_env(tmp_path, host)
    env.update(extra or {})
    done = run_cli(["doctor", "--json", "--conf-dir", str(SAMPLE_CONF)], env, private=True, timeout=120)
    assert done.stderr == "", done.stderr
    report = json.loads(done.stdout)
    assert report["exit_code"] == done.returncode
    return done.returncode, {check["id"]: check for check in report["checks"]}


def test_a_shipped_host_passes_every_check(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path)
    assert code == 0, checks
    assert {check["status"] for check in checks.values()} == {"pass"}
    assert "driver 24.1.rc3" in checks["npu"]["seen"]
    assert checks["shm"]["seen"] == "/dev/shm is 16.0 GiB"
    assert checks["jemalloc"]["seen"].endswith("libjemalloc.so.2, in the Servers' LD_PRELOAD")


def test_a3_checks_all_sixteen_chips_and_links(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, "800i-a3")
    assert code == 0, checks
    assert checks["chip-health"]["seen"] == "all 16 chip(s) OK"
    assert checks["links"]["seen"] == "16 link(s) UP, network health Success"


def test_a_small_shm_fails_and_a_smaller_than_wanted_one_warns(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path / "a", shm_size="65536k")
    assert code == 2
    assert checks["shm"]["status"] == "fail" and checks["shm"]["seen"].startswith("/dev/shm is 64 MiB")
    assert "--shm-size" in checks["shm"]["fix"]
    code, checks = doctor(tmp_path / "b", shm_size="8g")
    assert code == 1 and checks["shm"]["status"] == "warn"


def test_a_site_can_turn_a_failure_into_a_warning(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, shm_size="65536k", extra={"SUPERVISOR_PD_DOCTOR_WARN": "shm"})
    assert code == 1
    assert checks["shm"]["status"] == "warn" and checks["shm"]["downgraded"] is True


def test_no_jemalloc_warns(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, jemalloc=False)
    assert code == 1
    assert checks["jemalloc"]["status"] == "warn"
    assert "not found under /usr/lib or /usr/lib64" in checks["jemalloc"]["seen"]


def test_an_unhealthy_chip_fails_with_its_error_code(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, extra={"SUPERVISOR_PD_SIM_HOST_FAULTS": "3:unhealthy"})
    assert code == 2
    check = checks["chip-health"]
    assert check["status"] == "fail"
    assert check["seen"].startswith("NPU 3 chip 0: health Alarm, error code ")


def test_a_link_down_fails_and_a_bad_network_health_warns(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path / "a", extra={"SUPERVISOR_PD_SIM_HOST_FAULTS": "5:link-down"})
    assert code == 2 and checks["links"]["status"] == "fail"
    assert checks["links"]["seen"] == "NPU 5: link DOWN"
    code, checks = doctor(tmp_path / "b", extra={"SUPERVISOR_PD_SIM_HOST_FAULTS": "2:net-unhealthy"})
    assert code == 1 and checks["links"]["status"] == "warn"
    assert checks["links"]["seen"].startswith("NPU 2: network health ")


def test_npu_smi_printing_garbage_is_reported_as_the_refused_input(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, extra={"SUPERVISOR_PD_SIM_HOST_FAULTS": "npu-smi:garbage"})
    assert code == 2
    assert list(checks) == ["inputs"]
    assert checks["inputs"]["status"] == "fail" and checks["inputs"]["seen"].startswith("npu-smi: ")


def test_a_hanging_hccn_tool_is_bounded_and_only_warned_about(tmp_path: Path) -> None:
    extra = {"SUPERVISOR_PD_SIM_HOST_FAULTS": "hccn_tool:hang", "SUPERVISOR_PD_TOOL_TIMEOUT": "3"}
    code, checks = doctor(tmp_path, extra=extra)
    assert code == 1
    assert checks["device-ips"]["status"] == "warn"
    assert checks["links"]["status"] == "warn" and checks["links"]["seen"].startswith("not checked")


def test_weights_the_server_could_not_load_fail(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, extra={"MINDIE_MODEL_WEIGHT_PATH": str(tmp_path / "nowhere")})
    assert code == 2
    assert checks["weights"]["status"] == "fail"
    assert checks["weights"]["seen"] == f"{tmp_path}/nowhere (server-1, server-2, server-3, server-4): " + (
        f"{tmp_path}/nowhere does not exist"
    )
    assert "weights-config" not in checks


def test_weights_config_without_model_type_fails(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, weights={"torch_dtype": "float16"})
    assert code == 2
    assert checks["weights"]["status"] == "pass"
    assert checks["weights-config"]["status"] == "fail"
    assert checks["weights-config"]["seen"].endswith("has no model_type, which MindIE's model router needs")
    assert str(tmp_path / "host" / WEIGHTS) in checks["weights-config"]["seen"]
