"""A bounded load of streamed chat completions that records every request's outcome.

    python -m tests.streamload URL --streams N --seconds S --deadline D [--max-tokens T]

N workers keep one streamed chat completion each going through URL (loopback only) for S
seconds, then start no more; a request still open D seconds after that is abandoned and counted
as hung. The process stops by itself when the last worker ends, or on SIGTERM/SIGINT (which
ends the S seconds early). It prints one JSON document with the counts and, for each request
that did not complete, what happened.

Outcomes:
- completed: 200, and the stream ended with a finish_reason (or `[DONE]`);
- error: the service answered with an error: an HTTP status >= 400, or an error event in the
  stream (`data: {"error": ...}`);
- refused: the connection was refused (nothing listening): the client knew at once;
- lost: neither completed nor an error response: the stream ended or broke without saying why;
- hung: still open at the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

# A stop asked for while this process is still starting (importing aiohttp takes a while on a busy
# machine) must end the load cleanly, not kill the process before it reports.
STOP_EARLY: list[int] = []
signal.signal(signal.SIGTERM, lambda signum, _: STOP_EARLY.append(signum))

import aiohttp  # noqa: E402

OUTCOMES = ("completed", "error", "refused", "lost", "hung")


@dataclass
class Outcome:
    kind: str
    began: float
    ended: float
    status: int = 0
    detail: str = ""


@dataclass
class Load:
    url: str
    streams: int
    seconds: float
    deadline: float
    max_tokens: int
    results: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def classify(status: int, body: bytes) -> tuple[str, str]:
    if status >= 400:
        return "error", body[:200].decode(errors="replace")
    finished = False
    for event in body.split(b"\n\n"):
        data = event.strip().removeprefix(b"data:").strip()
        if not data:
            continue
        if data == b"[DONE]":
            finished = True
            continue
        try:
            parsed = json.loads(data)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "error" in parsed:
            return "error", data[:200].decode(errors="replace")
        for choice in parsed.get("choices", []) if isinstance(parsed, dict) else []:
            if choice.get("finish_reason"):
                finished = True
    if finished:
        return "completed", ""
    return "lost", f"status {status}, stream ended without finish_reason or error ({len(body)} bytes)"


async def one(load: Load, session: aiohttp.ClientSession, payload: bytes, number: int) -> Outcome:
    began = time.monotonic() - load.started
    headers = {"Content-Type": "application/json", "X-Request-Id": f"load-{number}"}
    status = 0
    body = b""
    try:
        async with session.post(load.url, data=payload, headers=headers) as response:
            status = response.status
            async for chunk in response.content.iter_any():
                body += chunk
        kind, detail = classify(status, body)
    except aiohttp.ClientConnectorError as exc:
        kind, detail = "refused", str(exc)[:200]
    except (aiohttp.ClientError, ConnectionError) as exc:
        # The response broke off: an error only if what arrived already said so.
        kind, detail = classify(status, body) if status else ("lost", "")
        if kind != "error":
            kind, detail = "lost", f"{type(exc).__name__} after {len(body)} bytes (status {status}): {exc}"[:300]
    return Outcome(kind, began, time.monotonic() - load.started, status, detail)


async def worker(load: Load, session: aiohttp.ClientSession, payload: bytes, index: int) -> None:
    number = index
    while not load.stopping.is_set() and time.monotonic() - load.started < load.seconds:
        task = asyncio.ensure_future(one(load, session, payload, number))
        remaining = load.started + load.seconds + load.deadline - time.monotonic()
        done, _ = await asyncio.wait({task}, timeout=max(0.0, remaining))
        if not done:
            task.cancel()
            began = time.monotonic() - load.started
            load.results.append(Outcome("hung", began, began, 0, "open at the deadline"))
            return
        outcome = task.result()
        load.results.append(outcome)
        number += load.streams
        if outcome.kind in ("refused", "error"):
            # A real client backs off before it tries again; without this, a fast 502 or 503
            # turns into thousands of requests.
            await asyncio.sleep(0.1)


async def run(load: Load) -> dict[str, Any]:
    host = urlsplit(load.url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit(f"streamload: {host} is not a loopback address")
    payload = json.dumps(
        {
            "model": "llama3-8b",
            "messages": [{"role": "user", "content": "reliability"}],
            "max_tokens": load.max_tokens,
            "stream": True,
        }
    ).encode()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, load.stopping.set)
    if STOP_EARLY:
        load.stopping.set()
    load.started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(load, session, payload, i) for i in range(load.streams)))
    counts = Counter(outcome.kind for outcome in load.results)
    return {
        "requests": len(load.results),
        **{kind: counts.get(kind, 0) for kind in OUTCOMES},
        "seconds": round(time.monotonic() - load.started, 3),
        "started_monotonic": load.started,
        # The worst first: lost and hung requests are what a reader must see.
        "problems": [
            asdict(o)
            for o in sorted(load.results, key=lambda o: OUTCOMES.index(o.kind), reverse=True)
            if o.kind != "completed"
        ][:200],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    load = Load(args.url, args.streams, args.seconds, args.deadline, args.max_tokens)
    result = asyncio.run(run(load))
    # The loop's handlers are gone with it: a late stop must not kill the report.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
