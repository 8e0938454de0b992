"""MindIE's public variables: applied to every config<n>.json as MindIE's boot helper maps them,
each effective value checked against the rule of the component that would refuse it, and shown
with its origin."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.plan.model import Plan
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.public_vars import PublicVariables
from supervisor_pd.plan.render import plan_json, plan_text
from supervisor_pd.settings import Settings
from tests import factories
from tests.factories import FakeChecker

SCHEDULE = ("BackendConfig", "ScheduleConfig")


def plan_with(env: dict[str, str], inputs: Any = None, settings: Settings | None = None) -> Plan:
    return make_plan(
        factories.facts(factories.chips(8, per_node=4)),
        inputs or factories.inputs(),
        settings or Settings(),
        FakeChecker(),
        variables=PublicVariables.from_environ(env),
    )


def refused(env: dict[str, str], inputs: Any = None) -> InputError:
    with pytest.raises(InputError) as caught:
        plan_with(env, inputs)
    return caught.value


def server_files(plan: Plan) -> list[dict[str, Any]]:
    return [orjson.loads(plan.file(server.config_file).content) for server in plan.servers]


def schedule(**values: Any) -> Any:
    return factories.inputs(template=lambda d: d["BackendConfig"]["ScheduleConfig"].update(values))


def rows(plan: Plan) -> dict[str, tuple[str, str, str]]:
    return {s.field.rsplit(".", 1)[-1]: (s.value, s.origin, s.source) for s in plan.server_settings}


# --- the mapping ---------------------------------------------------------------------------------


def test_every_variable_lands_on_the_helpers_key_of_every_server_config() -> None:
    plan = plan_with(
        {
            "MINDIE_MODEL_NAME": "foo",
            "MINDIE_MODEL_WEIGHT_PATH": "/models/foo",
            "MINDIE_MAX_SEQ_LEN": "99",
            "MINDIE_MAX_ITER_TIMES": "98",
            "MINDIE_PREFILL_BATCH_SIZE": "7",
            "MINDIE_DECODE_BATCH_SIZE": "8",
            "MINDIE_INFER_MODE": "dmi",
        }
    )
    assert len(plan.servers) == 4
    for data in server_files(plan):
        model = data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]
        assert (model["modelName"], model["modelWeightPath"]) == ("foo", "/models/foo")
        assert data["BackendConfig"]["ModelDeployConfig"]["maxSeqLen"] == 99
        sched = data["BackendConfig"]["ScheduleConfig"]
        assert (sched["maxIterTimes"], sched["maxPrefillBatchSize"], sched["maxBatchSize"]) == (98, 7, 8)
        assert data["ServerConfig"]["inferMode"] == "dmi"
        assert isinstance(sched["maxBatchSize"], int)  # the helper writes int(value), not the text
    assert (plan.model_name, plan.max_seq_len) == ("foo", 99)  # /v1/models and max_model_len
    assert rows(plan)["maxSeqLen"] == ("99", "MINDIE_MAX_SEQ_LEN", "variable")
    assert rows(plan)["inferMode"] == ("dmi", "MINDIE_INFER_MODE", "variable")


def test_without_variables_the_files_values_are_kept_and_shown_as_the_files() -> None:
    plan = plan_with({})
    before = factories.sample("config.json")
    for data in server_files(plan):
        assert data["BackendConfig"]["ModelDeployConfig"] == before["BackendConfig"]["ModelDeployConfig"]
        assert data["BackendConfig"]["ScheduleConfig"] == before["BackendConfig"]["ScheduleConfig"]
    assert rows(plan) == {
        "inferMode": ("dmi", "single-container PD", "plan"),
        "modelName": ("llama3-8b", "config.json", "file"),
        "modelWeightPath": ("/mnt/mindie-service/ms/model", "config.json", "file"),
        "maxSeqLen": ("2560", "config.json", "file"),
        "maxIterTimes": ("512", "config.json", "file"),
        "maxPrefillBatchSize": ("50", "config.json", "file"),
        "maxBatchSize": ("200", "config.json", "file"),
    }


def test_the_origin_table_is_in_the_text_and_the_json() -> None:
    plan = plan_with({"MINDIE_MODEL_NAME": "foo"})
    text = plan_text(plan, "/out", written=False)
    assert "Server settings" in text
    line = next(row for row in text.splitlines() if row.strip().startswith("modelName"))
    assert line.split() == ["modelName", "foo", "MINDIE_MODEL_NAME"]
    shown = {row["variable"]: row for row in plan_json(plan, "/out", False)["server_settings"]}
    assert shown["MINDIE_MODEL_NAME"]["field"] == "BackendConfig.ModelDeployConfig.ModelConfig[0].modelName"
    assert shown["MINDIE_MAX_SEQ_LEN"]["origin"] == "config.json"


def test_an_empty_variable_counts_as_not_set() -> None:
    plan = plan_with({"MINDIE_MAX_SEQ_LEN": "", "MINDIE_MODEL_NAME": ""})
    assert (plan.model_name, plan.max_seq_len) == ("llama3-8b", 2560)


def test_whitespace_and_a_plus_sign_are_taken_as_python_int_takes_them() -> None:
    assert plan_with({"MINDIE_MAX_SEQ_LEN": " +4096 "}).max_seq_len == 4096


def test_per_server_files_that_differ_are_shown_per_server() -> None:
    servers = {n: factories.sample("config.json") for n in range(1, 5)}
    for n in (3, 4):
        servers[n]["BackendConfig"]["ScheduleConfig"]["maxBatchSize"] = 400
    plan = plan_with({}, factories.inputs(servers=servers), Settings(gen_server_port=False))
    assert rows(plan)["maxBatchSize"] == ("per Server: 200, 200, 400, 400", "config<n>.json", "file")
    assert rows(plan)["maxSeqLen"] == ("2560", "config<n>.json", "file")


def test_prefill_batch_zero_is_mindies_default_of_max_batch_size() -> None:
    assert rows(plan_with({}, schedule(maxPrefillBatchSize=0)))["maxPrefillBatchSize"] == (
        "0 (= maxBatchSize)",
        "MindIE's default (config.json sets 0)",
        "default",
    )
    plan = plan_with({"MINDIE_PREFILL_BATCH_SIZE": "0", "MINDIE_DECODE_BATCH_SIZE": "1"})
    assert rows(plan)["maxPrefillBatchSize"] == ("0 (= maxBatchSize)", "MINDIE_PREFILL_BATCH_SIZE", "variable")
    assert server_files(plan)[0]["BackendConfig"]["ScheduleConfig"]["maxPrefillBatchSize"] == 0


# --- each number: not a number, its own range ----------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "low", "high"),
    [
        ("MINDIE_MAX_SEQ_LEN", 1, 4294967295),
        ("MINDIE_MAX_ITER_TIMES", 1, 4294967294),
        ("MINDIE_DECODE_BATCH_SIZE", 1, 5000),
        ("MINDIE_PREFILL_BATCH_SIZE", 0, 5000),
    ],
)
def test_each_number_has_its_range(variable: str, low: int, high: int) -> None:
    # The other values are set so that only `variable`'s own range can refuse.
    wide = {"MINDIE_MAX_SEQ_LEN": "4294967295", "MINDIE_MAX_ITER_TIMES": "1", "MINDIE_DECODE_BATCH_SIZE": "5000"}
    wide["MINDIE_PREFILL_BATCH_SIZE"] = "0"
    for good in (low, high):
        plan_with({**wide, variable: str(good)})
    for bad in (low - 1, high + 1):
        error = refused({**wide, variable: str(bad)})
        assert error.where == variable
        assert f"is {bad}; allowed: [{low}, {high}]" in error.problem


@pytest.mark.parametrize("text", ["abc", "1.5", "1e3", "0x10", "12 34", "١٢"])
@pytest.mark.parametrize(
    "variable", ["MINDIE_MAX_SEQ_LEN", "MINDIE_MAX_ITER_TIMES", "MINDIE_DECODE_BATCH_SIZE", "MINDIE_PREFILL_BATCH_SIZE"]
)
def test_a_number_variable_that_is_not_a_number(variable: str, text: str) -> None:
    error = refused({variable: text})
    assert error.where == variable
    assert "not a whole number; allowed: [" in error.problem


# --- relations, on the effective values ----------------------------------------------------------


def test_prefill_above_decode_names_the_variable_that_broke_it() -> None:
    error = refused({"MINDIE_PREFILL_BATCH_SIZE": "201"})  # the file's maxBatchSize is 200
    assert error.where == "MINDIE_PREFILL_BATCH_SIZE"
    assert "more than maxBatchSize 200 (config.json: BackendConfig.ScheduleConfig.maxBatchSize)" in error.problem
    error = refused({"MINDIE_DECODE_BATCH_SIZE": "49"})  # the file's maxPrefillBatchSize is 50
    assert error.where == "MINDIE_DECODE_BATCH_SIZE"
    assert "less than maxPrefillBatchSize 50" in error.problem
    error = refused({"MINDIE_PREFILL_BATCH_SIZE": "10", "MINDIE_DECODE_BATCH_SIZE": "9"})
    assert error.where == "MINDIE_PREFILL_BATCH_SIZE"
    assert "(MINDIE_DECODE_BATCH_SIZE)" in error.problem


def test_prefill_equal_to_decode_is_what_the_server_accepts() -> None:
    plan = plan_with({"MINDIE_PREFILL_BATCH_SIZE": "200"})
    assert server_files(plan)[0]["BackendConfig"]["ScheduleConfig"]["maxPrefillBatchSize"] == 200


def test_a_variable_can_repair_what_the_file_breaks() -> None:
    inputs = schedule(maxPrefillBatchSize=300)
    assert refused({}, inputs).where == "config.json: BackendConfig.ScheduleConfig.maxPrefillBatchSize"
    plan = plan_with({"MINDIE_DECODE_BATCH_SIZE": "300"}, inputs)
    assert server_files(plan)[0]["BackendConfig"]["ScheduleConfig"]["maxBatchSize"] == 300


def test_iter_times_above_seq_len_names_the_variable_or_the_field() -> None:
    error = refused({"MINDIE_MAX_SEQ_LEN": "99"})  # the file's maxIterTimes is 512
    assert error.where == "MINDIE_MAX_SEQ_LEN"
    assert "less than maxIterTimes 512 (config.json: BackendConfig.ScheduleConfig.maxIterTimes)" in error.problem
    error = refused({"MINDIE_MAX_ITER_TIMES": "2561"})
    assert error.where == "MINDIE_MAX_ITER_TIMES"
    assert "more than maxSeqLen 2560" in error.problem
    error = refused({}, schedule(maxIterTimes=2561))
    assert error.where == "config.json: BackendConfig.ScheduleConfig.maxIterTimes"
    assert "max output length exceeds" in error.problem
    plan_with({"MINDIE_MAX_SEQ_LEN": "99", "MINDIE_MAX_ITER_TIMES": "99"})  # equal: the Coordinator takes it


def test_every_servers_file_is_checked_with_the_variables_applied() -> None:
    servers = {n: factories.sample("config.json") for n in range(1, 5)}
    servers[3]["BackendConfig"]["ScheduleConfig"]["maxIterTimes"] = 3000
    servers[3]["BackendConfig"]["ModelDeployConfig"]["maxSeqLen"] = 4096
    inputs = factories.inputs(servers=servers)
    settings = Settings(gen_server_port=False)
    plan_with({}, inputs, settings)
    with pytest.raises(InputError) as caught:
        plan_with({"MINDIE_MAX_SEQ_LEN": "2560"}, inputs, settings)
    assert caught.value.where == "MINDIE_MAX_SEQ_LEN"
    assert "config3.json" in caught.value.problem


def test_a_file_without_max_prefill_batch_size_needs_the_variable() -> None:
    inputs = factories.inputs(template=lambda d: d["BackendConfig"]["ScheduleConfig"].pop("maxPrefillBatchSize"))
    error = refused({}, inputs)
    assert error.where == "config.json: BackendConfig.ScheduleConfig.maxPrefillBatchSize"
    assert "MINDIE_PREFILL_BATCH_SIZE" in error.problem
    plan = plan_with({"MINDIE_PREFILL_BATCH_SIZE": "20"}, inputs)
    assert server_files(plan)[0]["BackendConfig"]["ScheduleConfig"]["maxPrefillBatchSize"] == 20


# --- text values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Qwen2.5-7B_instruct", "x" * 256, "9"])
def test_model_names_the_server_accepts(name: str) -> None:
    assert plan_with({"MINDIE_MODEL_NAME": name}).model_name == name


@pytest.mark.parametrize("name", ["-a", "a.", "a b", "a/b", "x" * 257, "модель", "a\n"])
def test_model_names_the_server_refuses(name: str) -> None:
    error = refused({"MINDIE_MODEL_NAME": name})
    assert error.where == "MINDIE_MODEL_NAME"
    assert "letters, digits, '_', '.' and '-'" in error.problem


def test_the_files_model_name_is_held_to_the_same_rule() -> None:
    inputs = factories.inputs(
        template=lambda d: d["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0].update(modelName="my model")
    )
    assert refused({}, inputs).where == "config.json: BackendConfig.ModelDeployConfig.ModelConfig[0].modelName"
    assert plan_with({"MINDIE_MODEL_NAME": "mine"}, inputs).model_name == "mine"


@pytest.mark.parametrize("path", ["/models/llama-3.1_8b", "~/models", "models/../llama", "~"])
def test_weight_paths_the_server_accepts(path: str) -> None:
    plan = plan_with({"MINDIE_MODEL_WEIGHT_PATH": path})
    assert server_files(plan)[0]["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["modelWeightPath"] == path


@pytest.mark.parametrize("path", ["/models/\tx", "/models/my model", "/models/ünïcode", "/a~b/c", "/" + "a" * 4096])
def test_weight_paths_the_server_refuses(path: str) -> None:
    error = refused({"MINDIE_MODEL_WEIGHT_PATH": path})
    assert error.where == "MINDIE_MODEL_WEIGHT_PATH"
    assert "folder path of 1-4096 characters" in error.problem


def test_infer_mode_standard_is_refused_and_dmi_agrees() -> None:
    error = refused({"MINDIE_INFER_MODE": "standard"})
    assert error.where == "MINDIE_INFER_MODE"
    assert "allowed: dmi" in error.problem
    assert refused({"MINDIE_INFER_MODE": "DMI"}).where == "MINDIE_INFER_MODE"


def test_from_environ_reads_only_mindies_names_and_the_childrens_log_values() -> None:
    variables = PublicVariables.from_environ(
        {"MINDIE_MAX_SEQ_LEN": "10", "mindie_max_seq_len": "11", "OTHER": "x", "MINDIE_LOG_LEVEL": "ignored"},
        Settings(log_level="debug"),
    )
    assert variables.max_seq_len == "10"
    assert variables.log_level == "debug"  # what every child is given
