"""The log line formats (runtime/logformat.py) as the sink writes them: what `kubectl logs` shows
and what a log shipper parses."""

import datetime as dt
import io
import json
import re

from supervisor_pd.runtime.logformat import json_line, rfc3339, text_line
from supervisor_pd.runtime.logs import MAX_LINE, LogSink


def written(fmt: str, lines: list[tuple[str, str, str]], timestamps: bool = False) -> bytes:
    out = io.BytesIO()
    sink = LogSink(fmt, out=out, timestamps=timestamps)
    for process, stream, text in lines:
        sink.line(process, stream, text)
    sink.close()
    return out.getvalue()


def test_the_time_is_rfc3339_in_utc_with_milliseconds() -> None:
    stamp = 1738314902.4179
    text = rfc3339(stamp)
    assert text == "2025-01-31T09:15:02.417Z"
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.utcoffset() == dt.timedelta(0)
    assert abs(parsed.timestamp() - stamp) < 0.001
    assert rfc3339(1738314902.9999) == "2025-01-31T09:15:02.999Z"  # truncated, never .1000


def test_the_supervisors_json_lines_carry_their_level_and_no_stream() -> None:
    out = io.BytesIO()
    sink = LogSink("json", out=out)
    sink.info("service: starting -> ready: every process is ready")
    sink.warning("tls: every MindIE link is plain HTTP")
    sink.error("exit code 3 (BUDGET_EXHAUSTED): server-2 failed 6 times")
    sink.close()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["level"] for r in records] == ["info", "warning", "error"]
    for record in records:
        assert list(record) == ["time", "level", "process", "message"]
        assert record["process"] == "supervisor"
        dt.datetime.fromisoformat(record["time"])
    assert records[2]["message"] == "exit code 3 (BUDGET_EXHAUSTED): server-2 failed 6 times"


def test_a_childs_json_lines_carry_their_stream_and_no_level() -> None:
    data = written("json", [("server-1", "stdout", "Daemon start success!"), ("coordinator", "stderr", "[ERROR] x")])
    first, second = (json.loads(line) for line in data.splitlines())
    assert list(first) == ["time", "process", "stream", "message"]
    assert (first["process"], first["stream"], first["message"]) == ("server-1", "stdout", "Daemon start success!")
    assert (second["stream"], second["message"]) == ("stderr", "[ERROR] x")
    assert "level" not in second  # stderr is not a level: MindIE's [ERROR] stays in the message


def test_json_stays_one_object_per_line_whatever_a_child_writes() -> None:
    weird = [
        "\x00\x01\x1b[31mred\x1b[0m\x7f",  # control characters, ANSI colours
        "carriage\rreturn and a form\x0cfeed and \u2028 and \u0085",  # line breaks to some readers
        b"\xff\xfe invalid \xc3(".decode(errors="replace"),  # what the pump makes of invalid UTF-8
        'quotes " and \\ backslashes {"not": "json"}',
        "\ud800 a lone surrogate",  # not UTF-8 at all
        "x" * (MAX_LINE * 4),  # a very long line: cut to MAX_LINE characters
        "",
    ]
    data = written("json", [("server-1", "stdout", text) for text in weird])
    lines = data.split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == len(weird)
    assert records[0]["message"] == weird[0]
    assert records[1]["message"] == weird[1]
    assert records[4]["message"].endswith(" a lone surrogate")
    assert records[5]["message"] == "x" * MAX_LINE
    assert records[6]["message"] == ""


def test_text_lines_with_and_without_a_timestamp() -> None:
    lines = [("server-2", "stdout", "Daemon start success!")]
    assert written("text", lines) == b"server-2 | Daemon start success!\n"
    stamped = written("text", lines, timestamps=True).decode()
    match = re.fullmatch(r"(\S+) server-2 \| Daemon start success!\n", stamped)
    assert match is not None, stamped
    assert dt.datetime.fromisoformat(match.group(1)).utcoffset() == dt.timedelta(0)


def test_text_lines_name_a_level_other_than_info() -> None:
    assert text_line(None, "supervisor", "info", "hello") == b"supervisor | hello\n"
    assert text_line(None, "supervisor", "error", "exit code 3") == b"supervisor | error: exit code 3\n"
    assert text_line(None, "server-1", None, "\ud800") == b"server-1 | ?\n"


def test_a_json_line_with_no_level_and_no_stream_has_neither() -> None:
    record = json.loads(json_line(0.0, "supervisor", None, None, "m"))
    assert record == {"time": "1970-01-01T00:00:00.000Z", "process": "supervisor", "message": "m"}
