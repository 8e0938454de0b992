"""`supervisor-pd plan` run as a user runs it: a real process, real files, real ports.

Most runs plan with the sample configs' fixed ports (8080, 1025..., 2000...), which another stack on
the machine may hold: they run in a private network namespace (`cli`). The runs that need a port
held by this test process see it, so they run here with ports from free_base() instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SAMPLE_CONF, base_env, listener, run_cli, sim_env, sim_host, tree_digest
from tests.simstack import Ports, free_base, make_conf


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    folder = tmp_path / "conf"
    shutil.copytree(SAMPLE_CONF, folder)
    return folder


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command in a private network namespace: the sample configs' ports are free there."""
    return run_cli(args, env, private=True)


def free_ports(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the sample configs and an environment whose ports are all free here now."""
    ports = Ports(free_base())
    env = {
        **base_env(tmp_path),
        "SUPERVISOR_PD_API_PORT": str(ports.api),
        "SUPERVISOR_PD_PORT_BASE": str(ports.servers),
    }
    return make_conf(tmp_path / "free-conf", ports), env


def model(data: dict[str, Any]) -> dict[str, Any]:
    return data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]


# --- the happy paths ------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "servers"), [("800i-a2", 4), ("800i-a3", 8), ("800i-a2-4npu", 2)])
def test_plan_on_a_simulated_host(tmp_path: Path, profile: str, servers: int) -> None:
    out = tmp_path / "out"
    result = cli(["plan", "--simulate", profile, "--output", str(out), "--json"], base_env(tmp_path))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["written"] is True
    assert len(plan["servers"]) == servers
    names = {f"config{n}.json" for n in range(1, servers + 1)} | {
        "ms_controller.json",
        "ms_coordinator.json",
        "global_ranktable.json",
        "http_client_ctl.json",
        ".supervisor-pd-plan",
    }
    assert set(os.listdir(out)) == names
    ranktable = json.loads((out / "global_ranktable.json").read_text())
    listed = ranktable["server_group_list"][0]["server_list"]
    for server, entry in zip(plan["servers"], listed, strict=True):
        config = json.loads((out / server["config_file"]).read_text())["ServerConfig"]
        assert entry["mgmt_port"] == str(config["managementPort"]) == str(server["ports"]["management"])
        assert entry["predict_port"] == str(config["port"])
    controller = json.loads((out / "ms_controller.json").read_text())
    assert controller["global_rank_table_file_path"] == str(out / "global_ranktable.json")


def test_table_output_and_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(["plan", "--simulate", "800i-a2", "--output", str(out), "--dry-run"], base_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "4 Servers; P:D 1:1 -> 2 prefill, 2 decode" in result.stdout
    assert "not written: --dry-run" in result.stdout
    assert not out.exists()


def test_environment_selects_the_simulation(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "SUPERVISOR_PD_SIMULATE": "800i-a3", "MINDIE_MS_P_RATE": "1", "MINDIE_MS_D_RATE": "3"}
    result = cli(["plan", "--json", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["device_type"] == "800i-a3"
    assert [s["role"] for s in plan["servers"]] == ["prefill", "prefill"] + ["decode"] * 6


def test_configmap_layout_succeeds(tmp_path: Path) -> None:
    mount = tmp_path / "mnt" / "config-files"
    stamped = mount / "..2026_11_23_10_00_00.000000001"
    shutil.copytree(SAMPLE_CONF, stamped)
    (mount / "..data").symlink_to(stamped.name)
    for name in os.listdir(stamped):
        (mount / name).symlink_to(f"..data/{name}")
    before = tree_digest(mount)
    env = {**base_env(tmp_path), "CONFIG_FROM_CONFIG_FILE_PATH": str(mount)}
    result = cli(["plan", "--simulate", "800i-a2", "--output", str(tmp_path / "out")], env)
    assert result.returncode == 0, result.stderr
    assert "CONFIG_FROM_CONFIG_FILE_PATH" in result.stdout
    assert tree_digest(mount) == before


def test_a_busy_configured_port_is_moved_and_reported(tmp_path: Path) -> None:
    with listener() as busy:
        port = busy.getsockname()[1]
        conf, env = free_ports(tmp_path)  # after the listener, so none of them is its port
        edit(conf / "ms_coordinator.json", lambda d: d["http_config"].update(status_port=str(port)))
        result = run_cli(
            ["plan", "--simulate", "800i-a2", "--conf-dir", str(conf), "--output", str(tmp_path / "out"), "--json"],
            env,
        )
    assert result.returncode == 0, result.stderr
    moved = [p for p in json.loads(result.stdout)["ports"] if p["origin"] == "moved"]
    assert [(p["field"], p["requested"]) for p in moved] == [("status_port", port)]
    assert f"by pid {os.getpid()}" in moved[0]["reason"]


def test_placeholder_ips_warn_when_hccn_tool_fails_for_one_device(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "SUPERVISOR_PD_SIM_HCCN_FAIL": "5"}
    result = cli(["plan", "--simulate", "800i-a2", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    assert "Warnings" in result.stdout
    assert "no device IP for NPU(s) 5" in result.stdout


# --- bad inputs: exit 2, one clear line, nothing written -------------------------------


def assert_refused(result, tmp_path: Path, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("supervisor-pd: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert result.stdout == ""


def plan_with(tmp_path: Path, conf: Path | None, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    args = ["plan", "--output", str(tmp_path / "out"), *extra]
    if conf is not None:
        args += ["--conf-dir", str(conf)]
    if env is None:
        env = base_env(tmp_path)
        args += ["--simulate", "800i-a2"]
    return cli(args, env)


def test_missing_conf_dir(tmp_path: Path) -> None:
    assert_refused(plan_with(tmp_path, tmp_path / "nowhere"), tmp_path, "nowhere", "does not exist")


def test_no_conf_dir_at_all_on_a_real_host(tmp_path: Path) -> None:
    env = sim_env(tmp_path, sim_host(tmp_path))
    assert_refused(plan_with(tmp_path, None, env=env), tmp_path, "--conf-dir", "no config folder given")


@pytest.mark.parametrize(
    ("file", "change", "needles"),
    [
        ("config.json", b'{"ServerConfig": ', ("config.json", "not valid JSON")),
        (
            "config.json",
            lambda d: d["BackendConfig"]["ModelDeployConfig"].pop("ModelConfig"),
            ("config.json: BackendConfig.ModelDeployConfig.ModelConfig", "required"),
        ),
        (
            "config.json",
            lambda d: model(d).update(worldSize=0),
            ("ModelConfig[0].worldSize", "greater than or equal to 1"),
        ),
        ("config.json", lambda d: model(d).update(worldSize=3), ("ModelConfig[0].worldSize", "does not divide the 8")),
        (
            "config.json",
            lambda d: d["ServerConfig"].update(httpsEnabled=True),
            ("ms_controller.json: tls_config.request_server_tls_enable", "both use TLS or both not"),
        ),
        (
            "ms_coordinator.json",
            lambda d: d["http_config"].update(manage_port="70000"),
            ("ms_coordinator.json: http_config.manage_port", "70000 is not an allowed port"),
        ),
        (
            "ms_controller.json",
            lambda d: d.update(default_p_rate=1, default_d_rate=0),
            ("default_p_rate", "both must be 0"),
        ),
    ],
)
def test_bad_config_files(tmp_path: Path, conf: Path, file: str, change, needles: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    if isinstance(change, bytes):
        (conf / file).write_bytes(change)
    else:
        edit(conf / file, change)
    before = tree_digest(conf)
    assert_refused(plan_with(tmp_path, conf), tmp_path, *needles)
    assert tree_digest(conf) == before


@pytest.mark.parametrize(
    ("variables", "needles"),
    [
        ({"MINDIE_MS_P_RATE": "1", "MINDIE_MS_D_RATE": "0"}, ("MINDIE_MS_P_RATE, MINDIE_MS_D_RATE", "both must be 0")),
        ({"MINDIE_MS_P_RATE": "3", "MINDIE_MS_D_RATE": "2"}, ("more than the 4 Servers",)),
        ({"MINDIE_MS_P_RATE": "one"}, ("MINDIE_MS_P_RATE", "valid integer")),
        ({"ASCEND_VISIBLE_DEVICES": "0-3,9"}, ("ASCEND_VISIBLE_DEVICES", "names NPU 9")),
        ({"SUPERVISOR_PD_SIM_NPU_SMI": "empty"}, ("npu-smi", "no NPU is visible")),
        ({"SUPERVISOR_PD_SIM_NPU_SMI": "fail"}, ("npu-smi", "exited with 255")),
        ({"SUPERVISOR_PD_SIM_NPU_SMI": "garbage"}, ("npu-smi", "cannot read")),
        ({"SUPERVISOR_PD_SIM_HCCN_FAIL": "5", "SUPERVISOR_PD_DEVICE_IPS": "strict"}, ("NPU 5 has no device IP",)),
    ],
)
def test_bad_environment(tmp_path: Path, variables: dict[str, str], needles: tuple[str, ...]) -> None:
    env = {**base_env(tmp_path), **variables}
    result = cli(["plan", "--simulate", "800i-a2", "--output", str(tmp_path / "out")], env)
    assert_refused(result, tmp_path, *needles)


def test_npu_smi_missing(tmp_path: Path) -> None:
    host = sim_host(tmp_path)
    (host.bin_dir / "npu-smi").unlink()
    env = sim_env(tmp_path, host)
    env["PATH"] = f"{host.bin_dir}:{os.path.dirname(os.sys.executable)}"
    assert_refused(plan_with(tmp_path, SAMPLE_CONF, env=env), tmp_path, "npu-smi", "not found on PATH")


def test_world_size_larger_than_the_host(tmp_path: Path, conf: Path) -> None:
    edit(conf / "config.json", lambda d: model(d).update(worldSize=8))
    assert_refused(plan_with(tmp_path, conf), tmp_path, "worldSize", "at least 2")


def test_a_port_held_by_another_process(tmp_path: Path) -> None:
    with listener("0.0.0.0") as busy:
        port = busy.getsockname()[1]
        conf, env = free_ports(tmp_path)  # after the listener, so none of them is its port
        edit(conf / "ms_coordinator.json", lambda d: d["http_config"].update(predict_port=str(port)))
        args = ["plan", "--simulate", "800i-a2", "--conf-dir", str(conf), "--output", str(tmp_path / "out")]
        result = run_cli(args, env)
    assert_refused(result, tmp_path, "predict_port", f"port {port} is in use by pid {os.getpid()}", "never moved")


def test_a_duplicated_port(tmp_path: Path, conf: Path) -> None:
    assert_refused(
        plan_with(tmp_path, conf, "--api-port", "1025"),
        tmp_path,
        "http_config.predict_port",
        "already given to supervisor api_port",
    )


def test_a_duplicated_port_when_moves_are_forbidden(tmp_path: Path, conf: Path) -> None:
    edit(conf / "ms_controller.json", lambda d: d["http_server"].update(port=1026))
    env = {**base_env(tmp_path), "SUPERVISOR_PD_PORT_CONFLICTS": "strict"}
    result = cli(["plan", "--simulate", "800i-a2", "--conf-dir", str(conf), "--output", str(tmp_path / "out")], env)
    assert_refused(result, tmp_path, "http_server.port", "strict forbids moving it")


def test_user_server_port_out_of_range(tmp_path: Path, conf: Path) -> None:
    for n in range(1, 5):
        shutil.copy(conf / "config.json", conf / f"config{n}.json")
        edit(
            conf / f"config{n}.json",
            lambda d, n=n: d["ServerConfig"].update(
                port=3000 + n, managementPort=3100 + n, metricsPort=3200 + n, interCommPort=3300 + n
            ),
        )
    edit(conf / "config3.json", lambda d: d["ServerConfig"].update(metricsPort=99999))
    env = {**base_env(tmp_path), "MINDIE_MS_GEN_SERVER_PORT": "false"}
    result = cli(["plan", "--simulate", "800i-a2", "--conf-dir", str(conf), "--output", str(tmp_path / "out")], env)
    assert_refused(result, tmp_path, "config3.json: ServerConfig.metricsPort", "99999 is not an allowed port")


def test_fewer_server_files_than_servers(tmp_path: Path, conf: Path) -> None:
    for n in (1, 2, 3):
        shutil.copy(conf / "config.json", conf / f"config{n}.json")
    env = {**base_env(tmp_path), "MINDIE_MS_GEN_SERVER_PORT": "false"}
    result = cli(["plan", "--simulate", "800i-a2", "--conf-dir", str(conf), "--output", str(tmp_path / "out")], env)
    assert_refused(result, tmp_path, "config4.json", "is missing", "4 Servers")


def test_a_config_linked_outside_its_folder(tmp_path: Path, conf: Path) -> None:
    outside = tmp_path / "shared-config.json"
    (conf / "config.json").rename(outside)
    (conf / "config.json").symlink_to(outside)
    assert_refused(plan_with(tmp_path, conf), tmp_path, "config.json", "outside the config folder")


def test_a_200_mb_config(tmp_path: Path, conf: Path) -> None:
    with (conf / "config.json").open("r+b") as handle:
        handle.truncate(200 * 1024 * 1024)
    assert_refused(plan_with(tmp_path, conf), tmp_path, "config.json", "200 MiB")


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    result = cli(["plan", "--simulate", "800i-a2", "--output", str(blocker / "out")], base_env(tmp_path))
    assert result.returncode == 2
    assert "--output / SUPERVISOR_PD_OUTPUT_DIR" in result.stderr
    assert blocker.read_text() == "a file where a folder should be"


def test_output_into_the_input_folder_is_refused(tmp_path: Path, conf: Path) -> None:
    before = tree_digest(conf)
    result = cli(["plan", "--simulate", "800i-a2", "--conf-dir", str(conf), "--output", str(conf)], base_env(tmp_path))
    assert result.returncode == 2
    assert "input config folder" in result.stderr
    assert tree_digest(conf) == before


def test_unknown_command_line_option(tmp_path: Path) -> None:
    result = cli(["plan", "--bogus"], base_env(tmp_path))
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
