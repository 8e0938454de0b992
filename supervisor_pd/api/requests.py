"""What an inference request must be before it goes to the Coordinator: its body's encoding, its
JSON (no duplicate keys), and the parameters prefill/decode disaggregation cannot serve.

Body policy: a request body is taken as sent, identity-encoded only. MindIE's Coordinator and
Server have no request decompression (no Content-Encoding handling anywhere in MindIE-Motor), so a
compressed body could only fail there; here it is refused with 415 before a byte of it is read,
and nothing is ever inflated (the HTTP server runs with auto_decompress off).

The parameter check reads the semantic value, not the JSON type: `n: 2`, `n: 2.0` and `n: "2"`
all ask for two choices, `use_beam_search: 1` and `"true"` both ask for beam search. Values that
mean nothing (`n: "abc"`) are left to MindIE, whose own validation answers them.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict

IDENTITY = ("", "identity")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0", ""})


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def parse_body(body: bytes) -> Any:
    """The JSON body; raises DuplicateKey for a key given twice in one object (which value a JSON
    parser keeps is its own choice: the Coordinator's and ours could differ), ValueError if it is
    not JSON (or nested deeper than orjson's 1024 levels)."""
    parsed = orjson.loads(body)  # fast, bounded in depth: what is not JSON ends here
    if b"{" not in body:
        return parsed
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise ValueError("nested too deep") from None


def shown(text: str) -> str:
    """Client input echoed in an error: printable and short."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= 64 else clean[:61] + "..."


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    return None


def _asks_for(value: Any) -> bool:
    """`logprobs`/`top_logprobs`: true, or a count (0 included: the sampled token's logprob)."""
    if value is None:
        return False
    truth = _truth(value)
    if isinstance(value, bool) or (isinstance(value, str) and truth is not None and _number(value) is None):
        return bool(truth)
    return _number(value) is not None


def _stops(value: Any) -> bool:
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return any(item not in (None, "") for item in value)
    return False


Count = Annotated[float | None, BeforeValidator(_number)]
Flag = Annotated[bool | None, BeforeValidator(_truth)]
Asks = Annotated[bool, BeforeValidator(_asks_for)]
Stops = Annotated[bool, BeforeValidator(_stops)]


class PdParameters(BaseModel):
    """The parameters of one request (top level, or MindIE's/TGI's `parameters` object) as values."""

    model_config = ConfigDict(extra="ignore")

    n: Count = None
    best_of: Count = None
    use_beam_search: Flag = None
    logprobs: Asks = False
    top_logprobs: Count = None
    stop: Stops = False
    include_stop_str_in_output: Flag = None

    def unsupported(self) -> str | None:
        if self.n is not None and self.n > 1:
            return "n"
        if self.best_of is not None and self.best_of > 1:
            return "best_of"
        if self.use_beam_search:
            return "use_beam_search"
        if self.logprobs:
            return "logprobs"
        if self.top_logprobs is not None and self.top_logprobs != 0:
            return "top_logprobs"
        if self.stop:
            return "stop"
        if self.include_stop_str_in_output:
            return "include_stop_str_in_output"
        return None


def unsupported(body: Any) -> str | None:
    """The first parameter PD disaggregation cannot serve, or None (MindIE's API docs: n, best_of,
    use_beam_search and logprobs do not work together with PD disaggregation; stop is not
    supported in PD mode)."""
    if not isinstance(body, dict):
        return None
    places = [body]
    if isinstance(body.get("parameters"), dict):
        places.append(body["parameters"])
    for where in places:
        found = PdParameters.model_validate(where).unsupported()
        if found is not None:
            return found
    return None
