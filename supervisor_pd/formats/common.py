"""Shared pieces of the file-format models: validation errors that name the field, JSON I/O."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from supervisor_pd.errors import InputError

M = TypeVar("M", bound=BaseModel)


class OpenModel(BaseModel):
    """A MindIE file section: declared fields are checked, the others are kept as they are."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def field_path(loc: tuple[int | str, ...]) -> str:
    """('BackendConfig', 'ModelConfig', 0, 'worldSize') -> 'BackendConfig.ModelConfig[0].worldSize'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def describe_value(value: Any) -> str:
    shown = repr(value) if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return shown if len(shown) <= 60 else shown[:57] + "..."


def validate_document(model: type[M], data: Any, where: str) -> M:
    """Validate parsed JSON against `model`; a failure names the file, field and rule."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but missing"
        else:
            message = f"{message} (got {describe_value(error.get('input'))})"
        raise InputError(f"{where}: {field_path(loc)}", message) from None


def parse_json(raw: bytes, where: str) -> Any:
    """Parse JSON text; a failure names the file and the position."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(where, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def dump_json(data: Any) -> bytes:
    """The bytes supervisor_pd writes for a JSON file: indented, UTF-8, newline-terminated."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
