"""Reading the input folder: real files, links, sizes."""

import os
import shutil
from pathlib import Path

import pytest

from supervisor_pd.confdir import load_inputs, show_path
from supervisor_pd.errors import InputError
from supervisor_pd.settings import Settings
from tests.helpers import SAMPLE_CONF


def copy_samples(folder: Path) -> Path:
    shutil.copytree(SAMPLE_CONF, folder)
    return folder


def configmap(folder: Path) -> Path:
    """The layout kubelet gives a ConfigMap volume: links through ..data to a timestamped folder."""
    stamped = folder / "..2026_11_23_10_00_00.000000001"
    shutil.copytree(SAMPLE_CONF, stamped)
    (folder / "..data").symlink_to(stamped.name)
    for name in os.listdir(stamped):
        (folder / name).symlink_to(f"..data/{name}")
    return folder


def test_samples_load(tmp_path: Path) -> None:
    inputs = load_inputs(Settings(conf_dir=copy_samples(tmp_path / "conf")))
    assert inputs.template is not None
    assert inputs.controller.model.deploy_mode == "pd_disaggregation_single_container"


def test_configmap_layout_is_the_normal_case(tmp_path: Path) -> None:
    folder = configmap(tmp_path / "mnt")
    inputs = load_inputs(Settings(config_from_config_file_path=folder))
    assert inputs.source == "CONFIG_FROM_CONFIG_FILE_PATH"
    assert inputs.template is not None


def test_a_link_to_a_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = copy_samples(tmp_path / "conf")
    outside = tmp_path / "elsewhere.json"
    shutil.copy(folder / "config.json", outside)
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(outside)
    with pytest.raises(InputError) as caught:
        load_inputs(Settings(conf_dir=folder))
    assert caught.value.where.endswith("config.json")
    assert "outside the config folder" in caught.value.problem


def test_a_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    folder = copy_samples(tmp_path / "conf")
    with (folder / "ms_controller.json").open("r+b") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(InputError) as caught:
        load_inputs(Settings(conf_dir=folder))
    assert "200 MiB" in caught.value.problem
    assert "larger than 100 MiB" in caught.value.problem or "100 MiB are refused" in caught.value.problem


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_unreadable_content(tmp_path: Path, content: bytes, problem: str) -> None:
    folder = copy_samples(tmp_path / "conf")
    (folder / "ms_coordinator.json").write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_inputs(Settings(conf_dir=folder))
    assert caught.value.where == "ms_coordinator.json"
    assert problem in caught.value.problem


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_inputs(Settings(conf_dir=tmp_path / "nope"))
    folder = copy_samples(tmp_path / "conf")
    (folder / "config.json").unlink()
    with pytest.raises(InputError, match="MINDIE_MS_GEN_SERVER_PORT=true"):
        load_inputs(Settings(conf_dir=folder))
    with pytest.raises(InputError, match=r"has no config1\.json"):
        load_inputs(Settings(conf_dir=folder, gen_server_port=False))


def test_generation_off_reads_each_server_file(tmp_path: Path) -> None:
    folder = copy_samples(tmp_path / "conf")
    for n in (1, 2, 10):
        shutil.copy(folder / "config.json", folder / f"config{n}.json")
    shutil.copy(folder / "config.json", folder / "config01.json")  # not a Server file name
    inputs = load_inputs(Settings(conf_dir=folder, gen_server_port=False))
    assert sorted(inputs.servers) == [1, 2, 10]
    assert inputs.template is None


def test_control_characters_in_paths_are_shown_escaped() -> None:
    assert show_path("/tmp/a\nb\x1b[31mc") == "/tmp/a\\nb\\x1b[31mc"
    assert show_path("/tmp/配置") == "/tmp/配置"
