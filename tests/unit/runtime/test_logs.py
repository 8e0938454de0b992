import io
import json
import threading
from pathlib import Path

from supervisor_pd.runtime.logs import LogSink, RotatingFile
from tests.simstack import wait_until


def test_text_and_json_lines() -> None:
    out = io.BytesIO()
    sink = LogSink("text", out=out)
    sink.line("server-2", "stdout", "Daemon start success!")
    sink.info("hello")
    sink.close()
    assert out.getvalue().decode().splitlines() == ["server-2 | Daemon start success!", "supervisor | hello"]
    out = io.BytesIO()
    sink = LogSink("json", out=out)
    sink.line("coordinator", "stderr", "x")
    sink.close()
    record = json.loads(out.getvalue())
    assert (record["process"], record["stream"], record["message"]) == ("coordinator", "stderr", "x")


def test_tail_keeps_the_last_lines() -> None:
    sink = LogSink("text", out=io.BytesIO())
    for i in range(1500):
        sink.line("server-1", "stdout", str(i))
    assert sink.tail("server-1", 3) == ["1497", "1498", "1499"]
    assert len(sink.tail("server-1", 5000)) == 1000
    assert sink.tail("nobody", 3) == []
    sink.close()


class Blocked(io.RawIOBase):
    """A stdout that never accepts a byte until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.data = b""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def]
        self.release.wait()
        self.data += bytes(data)
        return len(data)


def test_a_blocked_stdout_drops_lines_instead_of_blocking() -> None:
    out = Blocked()
    sink = LogSink("text", out=out, queue_lines=100)  # type: ignore[arg-type]
    for i in range(5000):
        sink.line("server-1", "stdout", str(i))  # returns at once although nothing is written
    assert sink.dropped > 0
    out.release.set()
    wait_until(lambda: b"log lines dropped" in out.data, what="the drop report")
    sink.close()


def test_rotation(tmp_path: Path) -> None:
    log = RotatingFile(tmp_path / "server-1.log", max_bytes=100, count=2)
    for i in range(30):
        log.write(f"line {i:03d} ........\n".encode())
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["server-1.log", "server-1.log.1", "server-1.log.2"]
    assert "line 029" in (tmp_path / "server-1.log").read_text()
    assert all((tmp_path / n).stat().st_size <= 100 for n in names)


def test_tail_since_follows_by_line_number() -> None:
    sink = LogSink("text", out=io.BytesIO())
    for i in range(5):
        sink.line("server-1", "stdout", str(i))
    lines, following = sink.tail_since("server-1", 2)
    assert (lines, following) == (["3", "4"], 5)
    assert sink.tail_since("server-1", 10, following) == ([], 5)
    sink.line("server-1", "stdout", "5")
    assert sink.tail_since("server-1", 10, following) == (["5"], 6)
    assert sink.tail_since("server-1", 2, 0) == (["0", "1"], 2)  # a page at a time
    assert sink.tail_since("nobody", 10, 3) == ([], 0)
    sink.close()


def test_tail_since_skips_what_was_forgotten() -> None:
    sink = LogSink("text", out=io.BytesIO())
    for i in range(1200):
        sink.line("server-1", "stdout", str(i))
    lines, following = sink.tail_since("server-1", 1000, 10)
    assert lines[0] == "200"  # lines 10..199 are no longer kept
    assert following == 1200
    sink.close()


def test_a_log_file_that_cannot_be_written_costs_only_the_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno

    from supervisor_pd.runtime import logs

    full = threading.Event()
    full.set()
    real_write = RotatingFile.write

    def write(self: RotatingFile, data: bytes) -> None:
        if full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(RotatingFile, "write", write)
    monkeypatch.setattr(logs, "FILE_RETRY_SECONDS", 0.0)
    out = io.BytesIO()
    sink = LogSink("text", out=out, file_dir=tmp_path)
    sink.line("server-1", "stdout", "while full")
    wait_until(lambda: b"while full" in out.getvalue(), 5, what="stdout to keep flowing")
    full.clear()
    sink.line("server-1", "stdout", "after")
    sink.close()
    text = out.getvalue().decode()
    assert "log file of server-1 cannot be written (No space left on device)" in text
    assert "log file of server-1 is written again; 1 lines are missing from it" in text
    assert text.index("while full") < text.index("after")
    assert (tmp_path / "server-1.log").read_text() == "after\n"
