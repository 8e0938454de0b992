import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import parse_json, validate_document
from supervisor_pd.formats.coordinator_config import CoordinatorConfigFile
from supervisor_pd.formats.server_config import ServerConfigFile
from tests.factories import sample


def test_unknown_fields_survive() -> None:
    data = sample("config.json")
    data["ServerConfig"]["futureSwitch"] = {"a": 1}
    data["Extra"] = [1, 2]
    model = validate_document(ServerConfigFile, data, "config.json")
    dumped = model.model_dump(mode="json", exclude_unset=True)
    assert dumped["ServerConfig"]["futureSwitch"] == {"a": 1}
    assert dumped["Extra"] == [1, 2]


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        (lambda d: d["ServerConfig"].update(port="2001"), "config.json: ServerConfig.port", "valid integer"),
        (lambda d: d["ServerConfig"].pop("httpsEnabled"), "config.json: ServerConfig.httpsEnabled", "required"),
        (
            lambda d: d["BackendConfig"]["ModelDeployConfig"].update(ModelConfig=[]),
            "config.json: BackendConfig.ModelDeployConfig.ModelConfig",
            "at least 1",
        ),
        (
            lambda d: d["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0].update(worldSize=0),
            "config.json: BackendConfig.ModelDeployConfig.ModelConfig[0].worldSize",
            "greater than or equal to 1",
        ),
        (
            lambda d: d["ServerConfig"].update(inferMode="pd"),
            "config.json: ServerConfig.inferMode",
            "'standard' or 'dmi'",
        ),
        (
            lambda d: d["BackendConfig"]["ScheduleConfig"].update(maxBatchSize=10**12),
            "config.json: BackendConfig.ScheduleConfig.maxBatchSize",
            "5000",
        ),
    ],
)
def test_errors_name_the_field(change, where: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    data = sample("config.json")
    change(data)
    with pytest.raises(InputError) as caught:
        validate_document(ServerConfigFile, data, "config.json")
    assert caught.value.where == where
    assert problem in caught.value.problem


def test_coordinator_ports_are_text_but_numbers_are_accepted() -> None:
    data = sample("ms_coordinator.json")
    data["http_config"]["status_port"] = 1029
    model = validate_document(CoordinatorConfigFile, data, "ms_coordinator.json")
    assert model.http_config.status_port == "1029"
    data["http_config"]["status_port"] = "abc"
    with pytest.raises(InputError, match="port number written as a string"):
        validate_document(CoordinatorConfigFile, data, "ms_coordinator.json")


def test_invalid_json_names_the_position() -> None:
    with pytest.raises(InputError) as caught:
        parse_json(b'{"a": 1,\n "b": }', "config.json")
    assert caught.value.where == "config.json"
    assert "line 2" in caught.value.problem
