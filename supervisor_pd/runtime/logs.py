"""Children's output and supervisor_pd's own lines.

Lines go through a bounded queue to a writer thread, so a slow or blocked stdout never stalls
the supervision loop: when the queue is full, lines are dropped and counted, and the count is
reported once stdout drains. Each process keeps its last lines in memory for the status API and,
when MINDIE_LOG_TO_FILE is on, in its own size-rotated file.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

from supervisor_pd.runtime.logfeed import LogFeed
from supervisor_pd.runtime.logformat import json_line, text_line

TAIL_LINES = 1000
QUEUE_LINES = 20000
MAX_LINE = 16 * 1024
SUPERVISOR = "supervisor"
FILE_MODE = 0o640
# A log file that cannot be written (disk full, read-only) is tried again after this long; its
# lines still reach stdout meanwhile.
FILE_RETRY_SECONDS = 2.0


class RotatingFile:
    def __init__(self, path: Path, max_bytes: int, count: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.count = count
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._handle: BinaryIO = self._open()
        self._size = self._handle.tell()

    def _open(self) -> BinaryIO:
        """The file for appending, 0640 from the moment it exists, whatever the umask."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
        # Unbuffered: a full disk shows at the write that fails, not at some later flush.
        return os.fdopen(fd, "ab", buffering=0)

    def write(self, data: bytes) -> None:
        if self._size + len(data) > self.max_bytes:
            self._rotate()
        self._handle.write(data)
        self._size += len(data)

    def _rotate(self) -> None:
        self._handle.close()
        for index in range(self.count - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        surplus = self.path.with_name(f"{self.path.name}.{self.count + 1}")
        surplus.unlink(missing_ok=True)
        self._handle = self._open()
        self._size = 0

    def close(self) -> None:
        self._handle.close()


class LogSink:
    def __init__(
        self,
        fmt: str = "text",
        out: BinaryIO | None = None,
        file_dir: Path | None = None,
        file_bytes: int = 20 * 1024 * 1024,
        file_count: int = 5,
        queue_lines: int = QUEUE_LINES,
        timestamps: bool = False,
    ) -> None:
        self.fmt = fmt
        self.timestamps = timestamps  # text lines only: JSON lines always carry the time
        self.out = out if out is not None else sys.stdout.buffer
        self.file_dir = file_dir
        self.file_bytes = file_bytes
        self.file_count = file_count
        self.dropped = 0
        self._queue: queue.Queue[tuple[float, str, str, str] | None] = queue.Queue(queue_lines)
        self._tails: dict[str, collections.deque[str]] = {}
        self._counts: dict[str, int] = {}
        self.feed = LogFeed()  # `logs -f`: each line to its process's followers as it comes
        self._files: dict[str, RotatingFile] = {}
        self._file_failed: dict[str, tuple[float, int]] = {}  # process -> (when, lines missed)
        self._thread = threading.Thread(target=self._write_loop, name="log-writer", daemon=True)
        self._thread.start()

    # --- called from the event loop: never blocks ---------------------------------------

    def line(self, process: str, stream: str, text: str) -> None:
        text = text[:MAX_LINE]
        self._tails.setdefault(process, collections.deque(maxlen=TAIL_LINES)).append(text)
        self._counts[process] = self._counts.get(process, 0) + 1
        self.feed.publish(process, self._counts[process] - 1, text)
        try:
            self._queue.put_nowait((time.time(), process, stream, text))
        except queue.Full:
            self.dropped += 1

    # The supervisor's own lines have no stream: theirs carries their level (logformat.py).
    def info(self, message: str) -> None:
        self.line(SUPERVISOR, "info", message)

    def warning(self, message: str) -> None:
        self.line(SUPERVISOR, "warning", message)

    def error(self, message: str) -> None:
        self.line(SUPERVISOR, "error", message)

    def tail(self, process: str, lines: int) -> list[str]:
        kept = self._tails.get(process)
        return list(kept)[-lines:] if kept else []

    def tail_since(self, process: str, lines: int, after: int | None = None) -> tuple[list[str], int]:
        """The last `lines` lines of `process`, or those after line number `after` (for `logs -f`),
        and the number of the next line. Numbers count every line the process ever wrote."""
        kept = self._tails.get(process)
        total = self._counts.get(process, 0)
        if not kept:
            return [], total
        first = total - len(kept)  # number of the oldest line still kept
        if after is not None:
            start = max(after, first) - first
            return list(kept)[start : start + lines], min(total, first + start + lines)
        return list(kept)[-lines:], total

    def close(self, timeout: float = 2.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    # --- the writer thread ---------------------------------------------------------------

    def _format(self, stamp: float, process: str, stream: str, text: str) -> bytes:
        level, stream_name = (stream, None) if process == SUPERVISOR else (None, stream)
        if self.fmt == "json":
            return json_line(stamp, process, level, stream_name, text)
        return text_line(stamp if self.timestamps else None, process, level, text)

    def _write_loop(self) -> None:
        reported = 0
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < 512:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            data = bytearray()
            if self.dropped > reported:
                note = f"{self.dropped - reported} log lines dropped: stdout was not keeping up"
                data += self._format(time.time(), SUPERVISOR, "warning", note)
                reported = self.dropped
            per_file: dict[str, bytearray] = {}
            for stamp, process, stream, text in batch:
                data += self._format(stamp, process, stream, text)
                if self.file_dir is not None and process != SUPERVISOR:
                    per_file.setdefault(process, bytearray()).extend(f"{text}\n".encode(errors="replace"))
            for process, lines in per_file.items():
                note = self._to_file(process, bytes(lines), lines.count(b"\n"))
                if note:
                    data += self._format(time.time(), SUPERVISOR, "warning", note)
            with contextlib.suppress(OSError, ValueError):
                self.out.write(bytes(data))
                self.out.flush()
        for handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.close()

    def _to_file(self, process: str, data: bytes, lines: int) -> str | None:
        """Append to the process's file; a failure costs the file lines, never stdout's or the loop's."""
        failed = self._file_failed.get(process)
        if failed is not None and time.monotonic() - failed[0] < FILE_RETRY_SECONDS:
            self._file_failed[process] = (failed[0], failed[1] + lines)
            return None
        try:
            self._file(process).write(data)
        except OSError as exc:
            handle = self._files.pop(process, None)
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
            self._file_failed[process] = (time.monotonic(), (failed[1] if failed else 0) + lines)
            if failed is None:
                return (
                    f"log file of {process} cannot be written ({exc.strerror or exc}): its lines go to stdout "
                    f"only, trying again every {FILE_RETRY_SECONDS:g} s"
                )
            return None
        if failed is not None:
            del self._file_failed[process]
            return f"log file of {process} is written again; {failed[1]} lines are missing from it"
        return None

    def _file(self, process: str) -> RotatingFile:
        handle = self._files.get(process)
        if handle is None:
            assert self.file_dir is not None
            handle = RotatingFile(self.file_dir / f"{process}.log", self.file_bytes, self.file_count)
            self._files[process] = handle
        return handle
