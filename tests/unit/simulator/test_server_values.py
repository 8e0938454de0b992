"""The simulated Server refuses at config time the values of the keys MindIE's public variables set
that MindIE's Server refuses (MindIE-LLM src/config_manager: schedule_config.cpp:274-286,
model_deploy_config.cpp:423-447, config_manager_impl.cpp:189-193, 321-323), in MindIE's words."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from supervisor_pd.simulator.server import config as server_config
from tests.helpers import SAMPLE_CONF


def config_file(tmp_path: Path, change: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    weights = tmp_path / "weights"  # a model folder the Server's start checks would accept
    weights.mkdir(mode=0o750)
    (weights / "config.json").write_text('{"model_type": "llama", "torch_dtype": "float16"}')
    (weights / "config.json").chmod(0o640)
    path = tmp_path / "config1.json"
    data = json.loads((SAMPLE_CONF / "config.json").read_text())
    data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["modelWeightPath"] = str(weights)
    if change is not None:
        change(data)
    path.write_text(json.dumps(data))
    path.chmod(0o640)  # within what the Server's ReadJsonFile accepts
    return path


def schedule(**values: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda data: data["BackendConfig"]["ScheduleConfig"].update(values)


def model(**values: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda data: data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0].update(values)


@pytest.fixture(autouse=True)
def _no_container_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIES_CONTAINER_IP", raising=False)
    monkeypatch.delenv("MIES_CONTAINER_MANAGEMENT_IP", raising=False)


@pytest.mark.parametrize(
    "change",
    [
        None,
        schedule(maxPrefillBatchSize=0),  # 0 takes maxBatchSize
        schedule(maxPrefillBatchSize=200),  # equal to maxBatchSize
        schedule(maxBatchSize=819200, maxPrefillBatchSize=819200),
        model(modelName="Qwen2.5-7B_instruct"),
    ],
)
def test_values_the_server_takes(tmp_path: Path, change: Callable[[dict[str, Any]], Any] | None) -> None:
    server_config.load(config_file(tmp_path, change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (schedule(maxPrefillBatchSize=201), "scheduleParam.maxPrefillBatchSize [201] is out of bound [200]"),
        (schedule(maxBatchSize=0, maxPrefillBatchSize=0), "scheduleParam.maxBatchSize [0] is less than [1]"),
        (schedule(maxBatchSize=819201), "scheduleParam.maxBatchSize [819201] is out of bound [819200]"),
        (schedule(maxIterTimes=0), "The value of ScheduleParam.maxIterTimes can not be 0."),
        (schedule(maxIterTimes=-1), "The value of param maxIterTimes for uint32_t is invalid."),
        (
            lambda d: d["BackendConfig"]["ModelDeployConfig"].update(maxSeqLen=0),
            "The value of modelParam.maxSeqLen can not be 0.",
        ),
        (
            lambda d: d["BackendConfig"]["ModelDeployConfig"].update(maxSeqLen=4294967296),
            "The value of param maxSeqLen for uint32_t is invalid.",
        ),
        (model(modelName="my model"), "The value of modelName must meet the following rules"),
        (
            lambda d: d["BackendConfig"]["ScheduleConfig"].pop("maxPrefillBatchSize"),
            "BackendConfig.ScheduleConfig.maxPrefillBatchSize is required",
        ),
    ],
)
def test_values_the_server_refuses(tmp_path: Path, change: Callable[[dict[str, Any]], Any], message: str) -> None:
    with pytest.raises(server_config.ConfigError) as caught:
        server_config.load(config_file(tmp_path, change))
    assert message in str(caught.value)
