"""A real child's bytes, through the pipe pump `run` uses (runtime/os_effects.py), out of the sink
as JSON: one object per line whatever it writes, as a log shipper needs."""

import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import anyio

from supervisor_pd.runtime import processes
from supervisor_pd.runtime.logs import MAX_LINE, LogSink
from supervisor_pd.runtime.os_effects import OsEffects

# Invalid UTF-8, control characters, a CRLF line, a 200 KiB line, and a last line with no newline.
CHILD = r"""
import sys
out, err = sys.stdout.buffer, sys.stderr.buffer
out.write(b"plain\n")
out.write(b"\xff\xfe bad utf-8 \xc3(\n")
out.write(b"\x00\x1b[31mred\x1b[0m\r\n")
out.write(b"y" * 200000 + b"\n")
err.write(b"Traceback (most recent call last):\n")
out.write(b"no newline at the end")
"""


def test_a_childs_weird_output_is_one_json_object_per_line(tmp_path: Path) -> None:
    out = io.BytesIO()
    sink = LogSink("json", out=out)
    fx = OsEffects(lambda event: None, sink, processes.PidFile(tmp_path / "children.json"), "test", False)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None and child.stderr is not None

    async def pump() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fx._pump, "server-1", "stdout", child.stdout)
            tg.start_soon(fx._pump, "server-1", "stderr", child.stderr)

    try:
        anyio.run(pump)
        assert child.wait(10) == 0
    finally:
        fx.close()
        sink.close()
    records = [json.loads(line) for line in out.getvalue().split(b"\n")[:-1]]
    for record in records:
        assert set(record) == {"time", "process", "stream", "message"}
        assert dt.datetime.fromisoformat(record["time"]).utcoffset() == dt.timedelta(0)
    stdout = [r["message"] for r in records if r["stream"] == "stdout"]
    stderr = [r["message"] for r in records if r["stream"] == "stderr"]
    assert stderr == ["Traceback (most recent call last):"]
    assert stdout[0] == "plain"
    assert stdout[1] == "\ufffd\ufffd bad utf-8 \ufffd("
    assert stdout[2] == "\x00\x1b[31mred\x1b[0m"
    # The long line arrives in pieces of what the pump holds, each cut to MAX_LINE characters.
    long = [m for m in stdout if m and set(m) == {"y"}]
    assert long and all(len(m) <= MAX_LINE for m in long)
    assert stdout[-1] == "no newline at the end"
