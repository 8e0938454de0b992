"""The simulated Server checks its model weights at start as MindIE-LLM does (SafePath on the folder
and on config.json, then model_type and torch_dtype): a refusal is a ConfigError, exit 1."""

import json
import os
import shutil
from pathlib import Path

import pytest

from supervisor_pd.simulator.files import safe_path_error
from supervisor_pd.simulator.server import config as server_config
from tests.helpers import SAMPLE_CONF


def config_with_weights(tmp_path: Path, weights: Path) -> Path:
    path = tmp_path / "config1.json"
    shutil.copyfile(SAMPLE_CONF / "config.json", path)
    data = json.loads(path.read_text())
    data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["modelWeightPath"] = str(weights)
    path.write_text(json.dumps(data))
    path.chmod(0o640)
    return path


def weights(tmp_path: Path, document: object) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir(mode=0o750)
    (folder / "config.json").write_text(json.dumps(document))
    (folder / "config.json").chmod(0o640)
    return folder


def test_good_weights_load(tmp_path: Path) -> None:
    folder = weights(tmp_path, {"model_type": "llama", "torch_dtype": "bfloat16"})
    assert server_config.load(config_with_weights(tmp_path, folder)).model_name == "llama3-8b"


def test_missing_weights_refuse_the_start(tmp_path: Path) -> None:
    with pytest.raises(server_config.ConfigError, match=r"ModelConfig.modelWeightPath: Path not found: "):
        server_config.load(config_with_weights(tmp_path, tmp_path / "nowhere"))


def test_weights_without_config_json_refuse_the_start(tmp_path: Path) -> None:
    folder = weights(tmp_path, {})
    (folder / "config.json").unlink()
    with pytest.raises(server_config.ConfigError, match=r"config.json"):
        server_config.load(config_with_weights(tmp_path, folder))


@pytest.mark.parametrize(
    ("document", "words"),
    [({"torch_dtype": "float16"}, "no model_type"), ({"model_type": "llama", "torch_dtype": "float32"}, "torch_dtype")],
)
def test_what_the_model_runner_refuses_refuses_the_start(tmp_path: Path, document: object, words: str) -> None:
    with pytest.raises(server_config.ConfigError, match=words):
        server_config.load(config_with_weights(tmp_path, weights(tmp_path, document)))


def test_safe_path_refuses_special_characters_and_wide_modes_but_not_for_root(tmp_path: Path) -> None:
    odd = tmp_path / "a b"
    odd.mkdir(mode=0o750)
    assert safe_path_error(str(odd), directory=True, limit=0o750) == f"Path contains special characters: {odd}"
    wide = tmp_path / "wide"
    wide.mkdir(mode=0o755)
    wide.chmod(0o755)
    problem = safe_path_error(str(wide), directory=True, limit=0o750)
    if os.getuid() == 0:
        assert problem is None  # safe_path.cpp:292: uid 0 passes the limit
    else:
        assert problem == f"Path permission exceeds maximum allowed: {wide}, actual=0755, limit=0750"
