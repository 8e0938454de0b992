"""Token events in a streamed reply, counted as they complete, whatever the TCP chunks are.

The proxy times a stream's tokens (TTFT, TPOT) by the events in it, not by the chunks it reads:
under load one read can carry several events, or half of one. Two stream forms are read:

- Server-sent events (`text/event-stream`; MindIE's OpenAI, TGI, Triton and its own stream
  APIs): an event is the lines up to a blank line (`\\n`, `\\r\\n` or `\\r` line ends, as the SSE
  spec allows). An event is a token event when it has a `data:` line whose value is neither
  `[DONE]` (the end of an OpenAI stream, MindIE-LLM
  src/server/endpoint/single_req_infer_interface/single_req_vllm_openai_infer_interface.cpp:1184)
  nor an error object (`{"error"...`, the form the Coordinator and supervisor_pd end a broken
  stream with). Comments (`:` lines) and events without data are not tokens.
- vLLM's `/generate` stream (`text/plain`): JSON messages each ended by a NUL byte
  (single_req_vllm_infer_interface.cpp:309); every message is a token event.

An event counts for one token even when it carries several (MindIE may put more than one token's
text in one event when it decodes speculatively): this counts what the client receives.
Only a short prefix of a line is kept between reads, so a huge event costs no memory here.
"""

from __future__ import annotations

from typing import Protocol

# Enough of a line to tell `data: [DONE]` and `data: {"error"` from a token's data.
PREFIX = 64
DONE = b"[DONE]"
ERROR = b'{"error"'
NOT_TOKENS = tuple(b"data:" + space + word for space in (b"", b" ") for word in (DONE, ERROR))


class TokenEvents(Protocol):
    def feed(self, chunk: bytes) -> int:
        """The number of token events this chunk completes."""
        ...


class SseEvents:
    __slots__ = ("_cr", "_data", "_line")

    def __init__(self) -> None:
        self._line = b""  # the start of the line the last read ended in
        self._data = False  # the event being read has a token's data line
        self._cr = False  # the last read ended in `\r`, whose `\n` may start the next one

    def feed(self, chunk: bytes) -> int:
        if (
            not self._line
            and not self._data
            and chunk.endswith(b"\n\n")
            and chunk.count(b"\n") == 2
            and chunk.startswith(b"data:")
            and b"\r" not in chunk
        ):
            # The common case, one event of one line in one read (a Server writes one per
            # token), in a few C calls: the per-chunk cost is what limits the proxy (BENCHMARKS.md).
            self._cr = False
            return 0 if chunk.startswith(NOT_TOKENS) else 1
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        if not chunk:
            return 0
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            if len(self._line) < PREFIX:
                self._line = (self._line + chunk)[:PREFIX]
            return 0
        count = 0
        first = self._line + lines[0] if self._line else lines[0]
        for line in (first, *lines[1:-1]):
            if not line:
                if self._data:
                    count += 1
                    self._data = False
            elif line[:5] == b"data:" and not self._data:
                value = line[5:].strip()
                self._data = value != DONE and not value.startswith(ERROR)
        self._line = lines[-1][:PREFIX]
        return count


class NulMessages:
    __slots__ = ()

    def feed(self, chunk: bytes) -> int:
        return chunk.count(b"\0")


def token_events(content_type: str) -> TokenEvents | None:
    """A reader for a streamed reply of this Content-Type; None for a form it cannot tell tokens in."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "text/event-stream":
        return SseEvents()
    if kind == "text/plain":
        return NulMessages()
    return None
