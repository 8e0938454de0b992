from pathlib import Path

import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.settings import Settings, env_name, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(("SUPERVISOR_PD_", "MINDIE_", "MIES_", "ASCEND_")) or name in {
            "POD_IP",
            "CONFIG_FROM_CONFIG_FILE_PATH",
        }:
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.api_port == 8080
    assert settings.gen_server_port is True
    assert settings.p_rate is None
    assert settings.cpu_binding == "auto"
    assert settings.output == settings.state_dir / "conf"


def test_flag_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISOR_PD_API_PORT", "9000")
    assert load_settings().api_port == 9000
    assert load_settings(api_port=9100).api_port == 9100


def test_mindie_variables_keep_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINDIE_MS_P_RATE", "3")
    monkeypatch.setenv("MINDIE_MS_D_RATE", "1")
    monkeypatch.setenv("MINDIE_MS_GEN_SERVER_PORT", "false")
    monkeypatch.setenv("POD_IP", "10.0.0.5")
    monkeypatch.setenv("ASCEND_VISIBLE_DEVICES", "0-3")
    monkeypatch.setenv("CONFIG_FROM_CONFIG_FILE_PATH", "/mnt/config-files")
    settings = load_settings()
    assert (settings.p_rate, settings.d_rate) == (3, 1)
    assert settings.gen_server_port is False
    assert str(settings.pod_ip) == "10.0.0.5"
    assert settings.ascend_visible_devices == "0-3"
    assert settings.config_from_config_file_path == Path("/mnt/config-files")


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_IP", "")
    assert load_settings().pod_ip is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MINDIE_MS_GEN_SERVER_PORT", "maybe", "must be true or false"),
        ("MINDIE_MS_P_RATE", "x", "valid integer"),
        ("MINDIE_MS_D_RATE", "800", "less than or equal to 767"),
        ("SUPERVISOR_PD_CPU_BINDING", "always", "'auto', 'off' or 'strict'"),
        ("POD_IP", "10.0.0", "IPv4"),
        ("SUPERVISOR_PD_SIMULATE", "800i-a9", "800i-a2"),
    ],
)
def test_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InputError) as caught:
        load_settings()
    assert caught.value.where == variable
    assert message in caught.value.problem
    assert value in caught.value.problem


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(InputError) as caught:
        load_settings(port_base=80)
    assert caught.value.where == "--port-base"


def test_every_setting_has_a_description_and_an_env_name() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert env_name(name).isupper()


def test_the_control_token_comes_from_the_variable_or_a_file(tmp_path: Path) -> None:
    assert load_settings().token() is None
    assert Settings(api_token="abc").token() == "abc"  # type: ignore[arg-type]
    assert "abc" not in repr(Settings(api_token="abc"))  # type: ignore[arg-type]
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert Settings(api_token_file=secret).token() == "from-file"
    with pytest.raises(InputError) as error:
        Settings(api_token_file=tmp_path / "missing").token()
    assert env_name("api_token_file") in str(error.value)
