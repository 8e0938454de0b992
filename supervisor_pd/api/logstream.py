"""`GET /v1/processes/{name}/logs?follow=1`: a process's log as a stream the server pushes.

One chunked reply of NDJSON records: first the last `tail` lines, then every new line the moment
the sink hands it over (runtime/logfeed.py): no poll on either side. Each record is
`{"n": <line number>, "line": "..."}`; `{"skipped": K}` says K lines were lost because the reader
fell behind (its queue is bounded: a slow client costs lines, never the supervisor's memory). The
reply ends when the supervisor stops (or the client goes away).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from supervisor_pd.api.errors import json_response
from supervisor_pd.runtime.logfeed import TooManyFollowers
from supervisor_pd.runtime.logs import LogSink

HEADERS = {
    "Content-Type": "application/x-ndjson",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # an nginx in front passes each line on at once
}


def record(number: int, text: str) -> bytes:
    return orjson.dumps({"n": number, "line": text}) + b"\n"


async def follow(request: web.Request, sink: LogSink, name: str, tail: int) -> web.StreamResponse:
    try:
        follower = sink.feed.follow(name)  # before the tail is read: no line falls between the two
    except TooManyFollowers as exc:
        return json_response({"error": f"{exc}; try again later"}, 503, headers={"Retry-After": "5"})
    try:
        lines, following = sink.tail_since(name, tail)
        response = web.StreamResponse(headers=HEADERS)
        response.enable_chunked_encoding()
        await response.prepare(request)
        first = following - len(lines)
        await response.write(b"".join(record(first + i, text) for i, text in enumerate(lines)) or b"")
        while batch := await follower.lines():
            out = bytearray()
            for number, text in batch:
                if number < following:
                    continue  # already sent with the tail
                if number > following:
                    out += orjson.dumps({"skipped": number - following}) + b"\n"
                out += record(number, text)
                following = number + 1
            if out:
                await response.write(bytes(out))
        await response.write_eof()
        return response
    finally:
        follower.close()
