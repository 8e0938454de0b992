"""The weights checks against real folders, by MindIE-LLM's SafePath rules. The uid is given, so
that the owner and mode rules (skipped for uid 0, as MindIE skips them) are exercised as root too."""

import json
import os
from pathlib import Path

import pytest

from supervisor_pd.doctor.report import Status
from supervisor_pd.doctor.weights import Weights, check_weights

ME = os.getuid()
OTHER = 4242 if ME != 4242 else 4243
USER = ME or 4244  # a uid the owner and mode rules apply to (MindIE skips them for uid 0)


def owned_by_user(*paths: Path) -> None:
    """As root, hand the files to USER, so that they are USER's own as they would be on a host."""
    if ME == 0:
        for path in paths:
            os.chown(path, USER, -1)


def weights(tmp_path: Path, config: object = None, mode: int = 0o750, config_mode: int = 0o640) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    if config is not None:
        path = folder / "config.json"
        path.write_text(config if isinstance(config, str) else json.dumps(config))
        path.chmod(config_mode)
    folder.chmod(mode)
    return folder


GOOD = {"model_type": "llama", "torch_dtype": "bfloat16"}


def statuses(folder: Path | str, uid: int = ME, environ: dict[str, str] | None = None) -> dict[str, tuple[Status, str]]:
    checks = check_weights([Weights(str(folder), ("server-1", "server-2"))], environ or {}, uid)
    return {check.id: (check.status, check.seen) for check in checks}


def test_good_weights_pass(tmp_path: Path) -> None:
    found = statuses(weights(tmp_path, GOOD))
    assert found["weights"][0] is Status.PASS
    assert found["weights-config"] == (
        Status.PASS,
        f"{tmp_path}/model/config.json: model_type 'llama', torch_dtype 'bfloat16'",
    )


def test_a_missing_folder_fails_and_its_config_is_not_examined(tmp_path: Path) -> None:
    found = statuses(tmp_path / "nowhere")
    assert found["weights"][0] is Status.FAIL
    assert "does not exist" in found["weights"][1] and "server-1, server-2" in found["weights"][1]
    assert "weights-config" not in found


def test_a_file_instead_of_a_folder_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert statuses(tmp_path / "file")["weights"][0] is Status.FAIL


def test_characters_mindie_refuses_fail(tmp_path: Path) -> None:
    folder = tmp_path / "my model"
    folder.mkdir(mode=0o750)
    (folder / "config.json").write_text(json.dumps(GOOD))
    status, seen = statuses(folder)["weights"]
    assert status is Status.FAIL and "characters MindIE refuses" in seen


def test_another_owner_fails_for_a_user_and_passes_for_root(tmp_path: Path) -> None:
    folder = weights(tmp_path, GOOD)
    status, seen = statuses(folder, uid=OTHER)["weights"]
    assert status is Status.FAIL and f"not the Servers' uid {OTHER}" in seen
    assert statuses(folder, uid=0)["weights"][0] is Status.PASS


def test_a_mode_beyond_0750_fails_for_a_user_and_passes_for_root(tmp_path: Path) -> None:
    folder = weights(tmp_path, GOOD, mode=0o755)
    owned_by_user(folder, folder / "config.json")
    status, seen = statuses(folder, uid=USER)["weights"]
    assert status is Status.FAIL and "mode 0755, more than MindIE's limit 0750" in seen
    assert statuses(folder, uid=0)["weights"][0] is Status.PASS


def test_owner_and_mode_findings_are_warnings_when_mindie_only_prints_them(tmp_path: Path) -> None:
    folder = weights(tmp_path, GOOD)
    relaxed = {"MINDIE_CHECK_INPUTFILES_PERMISSION": "0"}
    assert statuses(folder, uid=OTHER, environ=relaxed)["weights"][0] is Status.WARN


def test_config_json_missing_fails(tmp_path: Path) -> None:
    status, seen = statuses(weights(tmp_path))["weights-config"]
    assert status is Status.FAIL and seen.endswith("config.json does not exist")


def test_config_json_wider_than_0640_fails_for_a_user(tmp_path: Path) -> None:
    folder = weights(tmp_path, GOOD, config_mode=0o644)
    owned_by_user(folder, folder / "config.json")
    assert statuses(folder, uid=USER)["weights"][0] is Status.PASS
    status, seen = statuses(folder, uid=USER)["weights-config"]
    assert status is Status.FAIL and "more than MindIE's limit 0640" in seen


@pytest.mark.parametrize(
    ("config", "status", "words"),
    [
        ("{not json", Status.FAIL, "is not JSON"),
        ([1, 2], Status.FAIL, "is not a JSON object"),
        ({"torch_dtype": "float16"}, Status.FAIL, "has no model_type"),
        ({"model_type": "llama", "torch_dtype": "float32"}, Status.FAIL, "'float32' is not float16 or bfloat16"),
        ({"model_type": "llama"}, Status.WARN, "has no torch_dtype"),
    ],
)
def test_config_json_content(tmp_path: Path, config: object, status: Status, words: str) -> None:
    found = statuses(weights(tmp_path, config))["weights-config"]
    assert found[0] is status and words in found[1]


def test_prefill_and_decode_on_different_models_fail(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = weights(tmp_path / "a", GOOD)
    second = weights(tmp_path / "b", {"model_type": "qwen2", "torch_dtype": "bfloat16"})
    checks = check_weights([Weights(str(first), ("server-1",)), Weights(str(second), ("server-3",))], {}, ME)
    config = next(check for check in checks if check.id == "weights-config")
    assert config.status is Status.FAIL
    assert "the Servers load different models" in config.seen
    assert "llama/bfloat16: server-1" in config.seen and "qwen2/bfloat16: server-3" in config.seen


def test_a_max_seq_len_beyond_the_models_positions_is_a_warning(tmp_path: Path) -> None:
    folder = weights(tmp_path, {**GOOD, "max_position_embeddings": 2048})
    checks = check_weights([Weights(str(folder), ("server-1",), max_seq_len=4096)], {}, ME)
    config = next(check for check in checks if check.id == "weights-config")
    assert config.status is Status.WARN
    assert "maxSeqLen 4096 is more than the model's max_position_embeddings 2048" in config.seen
    within = check_weights([Weights(str(folder), ("server-1",), max_seq_len=2048)], {}, ME)
    assert next(check for check in within if check.id == "weights-config").status is Status.PASS
