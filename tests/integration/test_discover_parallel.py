"""Discovery asks independent questions at once: the facts and notices are those of asking one
after another, and the pool runs as many tools at once as it is allowed, no more."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.platform.discover import discover
from supervisor_pd.platform.toolpool import ToolPool
from supervisor_pd.settings import load_settings
from tests.helpers import sim_env, sim_host

CASES = {
    "a2": ("800i-a2", {}),
    "a3": ("800i-a3", {}),
    "a2 4 npus": ("800i-a2-4npu", {}),
    "hccn fails for two": ("800i-a2", {"SUPERVISOR_PD_SIM_HCCN_FAIL": "2,5"}),
    "missing device node": ("800i-a3", {}),
    "a3 half-described hccl.json": ("800i-a3", {}),
    "npu-smi garbage": ("800i-a2", {"SUPERVISOR_PD_SIM_NPU_SMI": "garbage"}),
    "strict IPs": ("800i-a3", {"SUPERVISOR_PD_SIM_HCCN_FAIL": "7", "SUPERVISOR_PD_DEVICE_IPS": "strict"}),
}


def _outcome(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, concurrency: int) -> object:
    with monkeypatch.context() as patch:
        for name in list(os.environ):
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        try:
            return discover(load_settings(), concurrency=concurrency)
        except InputError as exc:
            return ("InputError", exc.where, exc.problem)


@pytest.mark.parametrize("case", sorted(CASES))
def test_at_once_is_one_after_another(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile, extra = CASES[case]
    host = sim_host(tmp_path, profile)
    if case == "missing device node":
        (host.root / "dev/davinci9").unlink()
    if case == "a3 half-described hccl.json":
        devices = [{"device_id": str(i), "device_ip": f"192.168.{i}.1", "super_device_id": str(i)} for i in range(8)]
        hccl = {"status": "completed", "server_list": [{"server_id": "s", "device": devices}]}
        path = host.root / "user/serverid/devindex/config/hccl.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(hccl))
    env = {**sim_env(tmp_path, host), **extra}
    sequential = _outcome(env, monkeypatch, concurrency=1)
    assert _outcome(env, monkeypatch, concurrency=16) == sequential
    assert sequential  # a HostFacts, or the error both ways


def _waiting_tool(folder: Path) -> Path:
    """A tool that marks its start, then waits until `$2` tools have started (exit 0) or gives up
    after `$3` checks 10 ms apart (exit 3)."""
    tool = folder / "waiter"
    tool.write_text(
        "#!/bin/sh\n"
        'touch "$MARKS/started-$1"\n'
        "i=0\n"
        'while [ "$(ls "$MARKS" | grep -c started-)" -lt "$2" ]; do\n'
        '  i=$((i + 1)); [ "$i" -gt "$3" ] && exit 3; sleep 0.01\n'
        "done\n"
    )
    tool.chmod(0o755)
    return tool


def test_the_pool_runs_tools_side_by_side(tmp_path: Path) -> None:
    tool = _waiting_tool(tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "MARKS": str(tmp_path / "marks")}
    (tmp_path / "marks").mkdir()
    with ToolPool(timeout=30, environ=env, concurrency=4) as pool:
        runs = [pool.submit([tool.name, str(n), "4", "1000"]) for n in range(4)]
    # One after another, the first would have given up waiting for the other three.
    assert [run.result().returncode for run in runs] == [0, 0, 0, 0]


def test_the_pool_runs_no_more_than_allowed(tmp_path: Path) -> None:
    tool = _waiting_tool(tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "MARKS": str(tmp_path / "marks")}
    (tmp_path / "marks").mkdir()
    with ToolPool(timeout=30, environ=env, concurrency=2) as pool:
        runs = [pool.submit([tool.name, str(n), "3", "30"]) for n in range(3)]
    # Two at a time: the first two wait in vain for a third, which starts only when one of them
    # gives up (the other may still see it arrive).
    codes = [run.result().returncode for run in runs]
    assert 3 in codes[:2] and codes[2] == 0
