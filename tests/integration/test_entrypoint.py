"""entrypoint.sh: the CANN/MindIE environment reaches supervisor-pd, which replaces the shell."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers import REPO

ENTRYPOINT = REPO / "entrypoint.sh"

# Stands in for supervisor-pd: records its pid, arguments and environment, as the real one would see them.
FAKE = """#!/bin/sh
exec python3 -c 'import json, os, sys; json.dump({"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[1:], "env": dict(os.environ)}, open(os.environ["RECORD"], "w"))' "$@"
"""


def run(tmp_path: Path, args: list[str], scripts: str) -> tuple[subprocess.CompletedProcess[str], int, dict]:  # type: ignore[type-arg]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "supervisor-pd"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    record = tmp_path / "record.json"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RECORD": str(record),
        "SUPERVISOR_PD_SET_ENV_SCRIPTS": scripts,
    }
    process = subprocess.Popen(
        [str(ENTRYPOINT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = process.communicate(timeout=30)
    completed = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return completed, process.pid, json.loads(record.read_text()) if record.exists() else {}


def set_env_script(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_set_env_scripts_reach_supervisor_pd_which_replaces_the_shell(tmp_path: Path) -> None:
    toolkit = set_env_script(
        tmp_path / "toolkit.sh",
        'export ASCEND_TOOLKIT_HOME=/usr/local/Ascend/ascend-toolkit/latest\nexport SEEN_ARGS="$#"\n',
    )
    mindie = set_env_script(tmp_path / "mindie.sh", "export LD_LIBRARY_PATH=/opt/mindie/lib\nfalse\n")
    done, pid, record = run(tmp_path, ["--api-port", "9000"], f"{toolkit} {tmp_path / 'missing.sh'} {mindie}")
    assert done.returncode == 0, done.stderr
    # exec, not a child: the process the container runtime started is supervisor-pd itself.
    assert record["pid"] == pid
    assert record["argv"] == ["run", "--api-port", "9000"]
    assert record["env"]["ASCEND_TOOLKIT_HOME"] == "/usr/local/Ascend/ascend-toolkit/latest"
    assert record["env"]["LD_LIBRARY_PATH"] == "/opt/mindie/lib"
    # A sourced script must not see (and misread) the options meant for supervisor-pd.
    assert record["env"]["SEEN_ARGS"] == "0"
    # A script that ends non-zero is reported, and the rest still runs.
    assert "mindie.sh returned 1" in done.stderr


def test_no_arguments_runs_the_stack(tmp_path: Path) -> None:
    done, _, record = run(tmp_path, [], str(tmp_path / "none.sh"))
    assert done.returncode == 0, done.stderr
    assert record["argv"] == ["run"]


def test_a_command_runs_in_place_of_the_stack(tmp_path: Path) -> None:
    done, pid, record = run(tmp_path, ["supervisor-pd", "plan", "--dry-run"], str(tmp_path / "none.sh"))
    assert done.returncode == 0, done.stderr
    assert record["argv"] == ["plan", "--dry-run"]
    assert record["pid"] == pid
