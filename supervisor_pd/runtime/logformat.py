"""How one log line looks on stdout: text for people, JSON for log shippers (docs/running.md, Logs).

A JSON line is one object: `time` (RFC 3339, UTC, milliseconds), `process` (`supervisor` or the
child's name), `message`, and then either `level` or `stream`:

- the supervisor's own lines carry `level` (info, warning, error): we know it;
- a child's lines carry `stream` (stdout, stderr) and no `level`: we do not know it. stderr is
  not "error" (Python's logging and many C++ loggers write every level there), and MindIE's
  level sits inside the text in a form its own settings change (MINDIE_LOG_VERBOSE; MindIE-LLM
  docs/zh/user_guide/user_manual/logging_configuration.md:109-122), so a shipper that wants it
  parses it from `message` (docs/running.md shows the pattern).
"""

from __future__ import annotations

import time

import orjson

LEVELS = ("info", "warning", "error")


def rfc3339(stamp: float) -> str:
    """`stamp` (seconds since the epoch) as 2025-01-31T09:15:02.417Z: what every shipper and
    datetime.fromisoformat read, sorting as text in time order."""
    whole = int(stamp)
    millis = int((stamp - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def json_line(stamp: float, process: str, level: str | None, stream: str | None, message: str) -> bytes:
    record: dict[str, str] = {"time": rfc3339(stamp)}
    if level is not None:
        record["level"] = level
    record["process"] = process
    if stream is not None:
        record["stream"] = stream
    record["message"] = message
    try:
        return orjson.dumps(record) + b"\n"
    except orjson.JSONEncodeError:
        # A lone surrogate (only a str made inside this process can hold one) is not UTF-8: the
        # line still goes out, one object, with the character replaced.
        record["message"] = message.encode("utf-8", "replace").decode("utf-8")
        record["process"] = process.encode("utf-8", "replace").decode("utf-8")
        return orjson.dumps(record) + b"\n"


def text_line(stamp: float | None, process: str, level: str | None, message: str) -> bytes:
    """`[time ]process | [level: ]message`: the level is written only when it is not info."""
    prefix = f"{rfc3339(stamp)} " if stamp is not None else ""
    said = f"{level}: " if level not in (None, "info") else ""
    return f"{prefix}{process} | {said}{message}\n".encode(errors="replace")
