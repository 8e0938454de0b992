"""MindIE's public variables for the Server config: applied to every config<n>.json, checked, shown.

MindIE's multi-pod boot helper maps seven variables onto the Server's config.json
(MindIE-Motor mindie_motor/src/example/deploy_scripts/boot_helper/update_mindie_server_config.py:
203-209 names, 262-362 one handler each, 393-403 the table). It converts the numbers with int() and
checks nothing else; the Server, the Controller and the Coordinator then refuse what they cannot
run, minutes later or never visibly. Here the same mapping is made at plan time, and each effective
value (the variable if set, else the file's) is checked against the rules of the component that
would refuse it, so a bad value stops the plan with the variable or field to change.

MINDIE_ENDPOINT_HTTPS_ENABLED and MINDIE_INTER_COMM_TLS_ENABLED, which the helper maps too, are
not applied here: TLS is planned as a whole (plan/tls.py, SUPERVISOR_PD_TLS).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from supervisor_pd.confdir import Document
from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import describe_value
from supervisor_pd.formats.server_config import ServerConfigFile
from supervisor_pd.plan.model import ServerSetting
from supervisor_pd.settings import Settings

_MODEL = "BackendConfig.ModelDeployConfig.ModelConfig[0]"
_SCHEDULE = "BackendConfig.ScheduleConfig"
_ALL_FILES = "config<n>.json"

# MindIE-LLM src/config_manager/model_deploy_config.cpp:423-433 CheckModelNameLength.
_MODEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,254}[A-Za-z0-9])?", re.ASCII)
_WHOLE = re.compile(r"\s*([+-]?[0-9]+)\s*", re.ASCII)
UINT32_MAX = 4294967295
# MindIE-LLM src/utils/safe_path.cpp (SafePath::Check, on modelWeightPath: model_deploy_config.cpp:
# 467): after "~" is expanded and ".." resolved, only these characters (:351-357), at most 4096 of
# them (:28, 359-363). Checked on the path as given: where it leads is the Server's own check.
_WEIGHT_PATH = re.compile(r"(?:~(?=/|$))?[A-Za-z0-9_./-]*", re.ASCII)
MAX_PATH = 4096
# MindIE-Motor controller/request_handler/ServerRequestHandler.cpp:203 (availSlotsNum, which is
# maxBatchSize on an idle Server) and coordinator/controller_listener/ControllerListener.cpp:516
# (totalSlotsNum): a Server with more slots is never admitted. The Server itself allows 819200.
MAX_BATCH = 5000


# MindIE's boot helper sets these Server fields from the environment (update_mindie_server_config.py
# :365-390), from "true" or "false" only; the TLS plan applies them (plan/tls.py).
TLS_SWITCHES = {"httpsEnabled": "MINDIE_ENDPOINT_HTTPS_ENABLED", "interCommTLSEnabled": "MINDIE_INTER_COMM_TLS_ENABLED"}


class PublicVariables(BaseModel):
    """MindIE's public variables as the environment sets them; None: not set. An empty value counts
    as not set (as for supervisor_pd's own settings; the helper's int("") fails and leaves the file)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    infer_mode: str | None = Field(None, alias="MINDIE_INFER_MODE")
    model_name: str | None = Field(None, alias="MINDIE_MODEL_NAME")
    model_weight_path: str | None = Field(None, alias="MINDIE_MODEL_WEIGHT_PATH")
    max_seq_len: str | None = Field(None, alias="MINDIE_MAX_SEQ_LEN")
    max_iter_times: str | None = Field(None, alias="MINDIE_MAX_ITER_TIMES")
    prefill_batch_size: str | None = Field(None, alias="MINDIE_PREFILL_BATCH_SIZE")
    decode_batch_size: str | None = Field(None, alias="MINDIE_DECODE_BATCH_SIZE")
    # The Servers' two TLS switches (update_mindie_server_config.py:365-390): applied by plan/tls.py.
    endpoint_https_enabled: str | None = Field(None, alias="MINDIE_ENDPOINT_HTTPS_ENABLED")
    inter_comm_tls_enabled: str | None = Field(None, alias="MINDIE_INTER_COMM_TLS_ENABLED")
    # Read by every MindIE process itself; checked by plan/log_vars.py.
    log_level: str | None = Field(None, alias="MINDIE_LOG_LEVEL")
    log_to_stdout: str | None = Field(None, alias="MINDIE_LOG_TO_STDOUT")
    log_to_file: str | None = Field(None, alias="MINDIE_LOG_TO_FILE")
    log_verbose: str | None = Field(None, alias="MINDIE_LOG_VERBOSE")
    log_path: str | None = Field(None, alias="MINDIE_LOG_PATH")
    log_rotate: str | None = Field(None, alias="MINDIE_LOG_ROTATE")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], settings: Settings | None = None) -> PublicVariables:
        """The variables in `environ`. With `settings`, the three log variables are the settings'
        values: those are what every child is given (runtime/spec.py child_environment)."""
        names = [str(field.alias) for field in cls.model_fields.values()]
        values = {name: environ[name] for name in names if environ.get(name)}
        if settings is not None:
            values.update(
                MINDIE_LOG_LEVEL=settings.log_level,
                MINDIE_LOG_TO_STDOUT=settings.log_to_stdout,
                MINDIE_LOG_TO_FILE=settings.log_to_file,
            )
        return cls.model_validate({key: value for key, value in values.items() if value})

    def tls_switch(self, field: str) -> bool | None:
        """The value the variable of TLS_SWITCHES[field] sets for every Server; None: not set."""
        name = TLS_SWITCHES[field]
        raw = self.raw(name)
        if raw is None:
            return None
        if raw not in ("true", "false"):
            raise InputError(
                name, f"must be true or false, as it sets every Server's ServerConfig.{field} (got {raw!r})"
            )
        return raw == "true"

    def raw(self, variable: str) -> str | None:
        for name, field in type(self).model_fields.items():
            if field.alias == variable:
                value = getattr(self, name)
                return value if isinstance(value, str) else None
        raise KeyError(variable)


@dataclass(frozen=True)
class _Key:
    """One variable and the config key the helper writes it to."""

    variable: str
    field: str
    number: bool


INFER_MODE = _Key("MINDIE_INFER_MODE", "ServerConfig.inferMode", False)
MODEL_NAME = _Key("MINDIE_MODEL_NAME", f"{_MODEL}.modelName", False)
WEIGHT_PATH = _Key("MINDIE_MODEL_WEIGHT_PATH", f"{_MODEL}.modelWeightPath", False)
MAX_SEQ_LEN = _Key("MINDIE_MAX_SEQ_LEN", "BackendConfig.ModelDeployConfig.maxSeqLen", True)
MAX_ITER_TIMES = _Key("MINDIE_MAX_ITER_TIMES", f"{_SCHEDULE}.maxIterTimes", True)
PREFILL_BATCH = _Key("MINDIE_PREFILL_BATCH_SIZE", f"{_SCHEDULE}.maxPrefillBatchSize", True)
DECODE_BATCH = _Key("MINDIE_DECODE_BATCH_SIZE", f"{_SCHEDULE}.maxBatchSize", True)
KEYS = (INFER_MODE, MODEL_NAME, WEIGHT_PATH, MAX_SEQ_LEN, MAX_ITER_TIMES, PREFILL_BATCH, DECODE_BATCH)
# Each number variable's own range, before the relations between them.
_RANGES = {
    # uint32 (param_checker.cpp:86-92), not 0 (model_deploy_config.cpp:444-447)
    MAX_SEQ_LEN: (1, UINT32_MAX, "MindIE's Server refuses 0 and values above 4294967295"),
    # not 0 (config_manager_impl.cpp:321); the Controller checks maxOutputLen in [1, 4294967294]
    # (ServerRequestHandler.cpp:38)
    MAX_ITER_TIMES: (1, UINT32_MAX - 1, "MindIE's Server refuses 0, its Controller values above 4294967294"),
    DECODE_BATCH: (1, MAX_BATCH, "MindIE's Controller and Coordinator refuse a Server with more than 5000 slots"),
    # 0 means maxBatchSize (schedule_config.cpp:80-82); above maxBatchSize is checked as a relation
    PREFILL_BATCH: (0, MAX_BATCH, "0 means maxBatchSize; it may not exceed maxBatchSize, at most 5000"),
}


@dataclass(frozen=True)
class _Value:
    value: Any
    where: str  # the variable, or "<file>: <field>"
    variable: bool


@dataclass(frozen=True)
class ServerVariables:
    """The checked result: what to write into every config<n>.json, and what to show."""

    overrides: tuple[tuple[str, Any], ...]  # (field, value) for each variable that is set
    settings: tuple[ServerSetting, ...]
    model_name: str  # the first Server's effective values, for the plan's summary and /v1/models
    max_seq_len: int

    def apply(self, data: dict[str, Any]) -> None:
        """Write the variables' values into one Server config, as the helper does."""
        for field, value in self.overrides:
            node: Any = data
            keys = field.replace("ModelConfig[0]", "ModelConfig.0").split(".")
            for key in keys[:-1]:
                node = node[int(key)] if key.isdigit() else node[key]
            node[keys[-1]] = value


def resolve(docs: Sequence[Document[ServerConfigFile]], variables: PublicVariables) -> ServerVariables:
    """Check every variable and every Server's effective values; raise InputError for the first
    bad one. `docs`: the Server config of each planned Server, in order."""
    given = {key: _parse(key, raw) for key in KEYS if (raw := variables.raw(key.variable)) is not None}
    per_server = [_effective(doc, given) for doc in docs]
    for values in per_server:
        _check_relations(values)
    overrides = tuple((key.field, value.value) for key, value in given.items() if key is not INFER_MODE)
    first = per_server[0]
    return ServerVariables(
        overrides=overrides,
        settings=tuple(_row(key, [values[key] for values in per_server], docs) for key in KEYS),
        model_name=str(first[MODEL_NAME].value),
        max_seq_len=int(first[MAX_SEQ_LEN].value),
    )


def _parse(key: _Key, raw: str) -> _Value:
    if key.number:
        low, high, why = _RANGES[key]
        match = _WHOLE.fullmatch(raw)
        if match is None:
            raise InputError(
                key.variable, f"is {describe_value(raw)}, not a whole number; allowed: [{low}, {high}] ({why})"
            )
        number = int(match.group(1))
        if not low <= number <= high:
            raise InputError(key.variable, f"is {number}; allowed: [{low}, {high}] ({why})")
        return _Value(number, key.variable, True)
    if key is INFER_MODE and raw != "dmi":
        raise InputError(
            key.variable,
            f"is {describe_value(raw)}; allowed: dmi, or leave it unset: single-container PD runs every Server "
            "in dmi mode ('standard' is PD mixed mode, without prefill and decode roles)",
        )
    _check_text(key, raw, key.variable)
    return _Value(raw, key.variable, True)


def _check_text(key: _Key, value: str, where: str) -> None:
    if key is MODEL_NAME and not _MODEL_NAME.fullmatch(value):
        raise InputError(
            where,
            f"is {describe_value(value)}; allowed: 1-256 characters of letters, digits, '_', '.' and '-', starting "
            "and ending with a letter or digit (MindIE's Server refuses any other model name)",
        )
    # An empty path: config_manager_impl.cpp:189-193 (PreCheck).
    bad_path = not value or len(value) > MAX_PATH or not _WEIGHT_PATH.fullmatch(value)
    if key is WEIGHT_PATH and bad_path:
        raise InputError(
            where,
            f"is {describe_value(value)}; allowed: a folder path of 1-{MAX_PATH} characters, each a letter, digit, "
            "'_', '.', '/' or '-' (MindIE's Server refuses any other path to the model)",
        )


def _effective(doc: Document[ServerConfigFile], given: Mapping[_Key, _Value]) -> dict[_Key, _Value]:
    """One Server's value of each key: the variable's, else its file's (checked the same way)."""
    model = doc.model
    schedule = model.BackendConfig.ScheduleConfig
    from_file: dict[_Key, Callable[[], Any]] = {
        INFER_MODE: lambda: "dmi",  # written by the plan whatever the file says (plan/configs.py)
        MODEL_NAME: lambda: model.model.modelName,
        WEIGHT_PATH: lambda: model.model.modelWeightPath,
        MAX_SEQ_LEN: lambda: model.BackendConfig.ModelDeployConfig.maxSeqLen,
        MAX_ITER_TIMES: lambda: schedule.maxIterTimes,
        PREFILL_BATCH: lambda: schedule.maxPrefillBatchSize,
        DECODE_BATCH: lambda: schedule.maxBatchSize,
    }
    values = {}
    for key in KEYS:
        if key in given:
            values[key] = given[key]
            continue
        value = from_file[key]()
        where = f"{doc.name}: {key.field}"
        if value is None:  # only maxPrefillBatchSize may be absent from the model
            raise InputError(
                where,
                f"is required but missing: MindIE's Server refuses a config without it (0 means maxBatchSize); "
                f"or set {key.variable}",
            )
        if not key.number and key is not INFER_MODE:
            _check_text(key, value, where)
        values[key] = _Value(value, where, False)
    return values


def _check_relations(values: Mapping[_Key, _Value]) -> None:
    prefill = values[PREFILL_BATCH]
    if prefill.value != 0:  # 0 takes maxBatchSize (schedule_config.cpp:80-82)
        # schedule_config.cpp:284-286: maxPrefillBatchSize in [1, maxBatchSize], else the Server refuses.
        _at_most(prefill, values[DECODE_BATCH], "maxPrefillBatchSize", "maxBatchSize", "MindIE's Server refuses it")
    # ControllerListener.cpp:509: an instance whose maxOutputLen (maxIterTimes) exceeds maxSeqLen is
    # refused by the Coordinator, so the service would never become ready.
    _at_most(
        values[MAX_ITER_TIMES],
        values[MAX_SEQ_LEN],
        "maxIterTimes",
        "maxSeqLen",
        "the Coordinator refuses instances whose max output length exceeds the max sequence length",
    )


def _at_most(part: _Value, bound: _Value, part_name: str, bound_name: str, why: str) -> None:
    """`part` <= `bound`, else an error naming what to change: a variable set for this run before
    a file's value."""
    if part.value <= bound.value:
        return
    if part.variable or not bound.variable:
        raise InputError(
            part.where,
            f"is {part.value}, more than {bound_name} {bound.value} ({bound.where}); allowed: at most "
            f"{bound_name}: {why}",
        )
    raise InputError(
        bound.where,
        f"is {bound.value}, less than {part_name} {part.value} ({part.where}); {part_name} may not exceed "
        f"{bound_name}: {why}",
    )


def _row(key: _Key, values: list[_Value], docs: Sequence[Document[ServerConfigFile]]) -> ServerSetting:
    """One line of the plan's table: the effective value(s) and where they came from."""
    if values[0].variable:
        value = "0 (= maxBatchSize)" if key is PREFILL_BATCH and values[0].value == 0 else str(values[0].value)
        return ServerSetting(
            field=key.field, variable=key.variable, value=value, origin=key.variable, source="variable"
        )
    if key is INFER_MODE:
        return ServerSetting(
            field=key.field, variable=key.variable, value="dmi", origin="single-container PD", source="plan"
        )
    files = docs[0].name if len({doc.name for doc in docs}) == 1 else _ALL_FILES
    shown = [str(value.value) for value in values]
    text = shown[0] if len(set(shown)) == 1 else "per Server: " + ", ".join(shown)
    if key is PREFILL_BATCH and all(value.value == 0 for value in values):
        # The Server reads 0 as "the same as maxBatchSize" (schedule_config.cpp:80-82).
        return ServerSetting(
            field=key.field,
            variable=key.variable,
            value="0 (= maxBatchSize)",
            origin=f"MindIE's default ({files} sets 0)",
            source="default",
        )
    return ServerSetting(field=key.field, variable=key.variable, value=text, origin=files, source="file")
