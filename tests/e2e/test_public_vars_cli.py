"""`supervisor-pd plan` with MindIE's public variables set, run as a user runs it: the values reach
the printed plan and every written config<n>.json; a value MindIE would refuse ends the command
with exit 2 naming the variable, and nothing is written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import base_env, run_cli
from tests.simstack import Ports, free_base, make_conf


def free_ports(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the sample configs and an environment whose ports are all free here now."""
    ports = Ports(free_base())
    env = {
        **base_env(tmp_path),
        "SUPERVISOR_PD_API_PORT": str(ports.api),
        "SUPERVISOR_PD_PORT_BASE": str(ports.servers),
    }
    return make_conf(tmp_path / "conf", ports), env


VARIABLES = {"MINDIE_MAX_SEQ_LEN": "99", "MINDIE_MAX_ITER_TIMES": "98", "MINDIE_MODEL_NAME": "foo"}


def plan(tmp_path: Path, variables: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    conf, env = free_ports(tmp_path)
    out = tmp_path / "out"
    argv = ["plan", "--simulate", "800i-a2", "--conf-dir", str(conf), "--output", str(out), *args]
    return run_cli(argv, {**env, **variables}), out


def test_the_variables_reach_the_printed_plan(tmp_path: Path) -> None:
    result, out = plan(tmp_path, VARIABLES, "--dry-run")
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("Server settings", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in table[2:]}
    assert rows["modelName"] == ["foo", "MINDIE_MODEL_NAME"]
    assert rows["maxSeqLen"] == ["99", "MINDIE_MAX_SEQ_LEN"]
    assert rows["maxIterTimes"] == ["98", "MINDIE_MAX_ITER_TIMES"]
    assert rows["maxBatchSize"] == ["200", "config.json"]
    assert not out.exists()  # --dry-run


def test_the_variables_reach_every_written_config(tmp_path: Path) -> None:
    result, out = plan(tmp_path, VARIABLES, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["model_name"], shown["max_seq_len"]) == ("foo", 99)
    assert {row["variable"]: row["origin"] for row in shown["server_settings"]}["MINDIE_MAX_SEQ_LEN"] == (
        "MINDIE_MAX_SEQ_LEN"
    )
    for server in shown["servers"]:
        backend = json.loads((out / server["config_file"]).read_text())["BackendConfig"]
        assert backend["ModelDeployConfig"]["ModelConfig"][0]["modelName"] == "foo"
        assert backend["ModelDeployConfig"]["maxSeqLen"] == 99
        assert backend["ScheduleConfig"]["maxIterTimes"] == 98


@pytest.mark.parametrize(
    ("variables", "where", "allowed"),
    [
        # alone, 99 is below the file's maxIterTimes 512: the Coordinator would refuse every Server
        ({"MINDIE_MAX_SEQ_LEN": "99"}, "MINDIE_MAX_SEQ_LEN", "maxIterTimes may not exceed maxSeqLen"),
        ({"MINDIE_DECODE_BATCH_SIZE": "5001"}, "MINDIE_DECODE_BATCH_SIZE", "allowed: [1, 5000]"),
        ({"MINDIE_LOG_LEVEL": "VERBOSE"}, "MINDIE_LOG_LEVEL", "allowed: one of DEBUG, INFO, WARN, ERROR, CRITICAL"),
    ],
)
def test_a_value_mindie_would_refuse_exits_2_and_writes_nothing(
    tmp_path: Path, variables: dict[str, str], where: str, allowed: str
) -> None:
    result, out = plan(tmp_path, variables)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {where}: " in result.stderr
    assert allowed in result.stderr
    assert not out.exists()
