"""A closed-loop HTTP load generator for the benchmarks: loopback only, bounded in time.

    python bench/loadgen.py URL --mode json|sse --concurrency C --seconds S [--max-tokens N]

C workers each send one request after another for S seconds (then finish the one in flight) and
the process prints one JSON document: per request its latency to the first body bytes, its full
duration and, for streams, the number of `data:` events, plus the errors. It runs as its own
process so its CPU use does not mix with what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from urllib.parse import urlsplit

import aiohttp

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


async def worker(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, until: float, out: dict[str, list]
) -> None:
    """Requests one after another until `until` (at least one)."""
    headers = {"Content-Type": "application/json"}
    while True:
        if out["total"] and time.perf_counter() >= until:
            break
        began = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                first = None
                events = 0
                async for chunk in response.content.iter_any():
                    if first is None:
                        first = time.perf_counter()
                    if stream:
                        events += chunk.count(b"data: ")
                end = time.perf_counter()
                if response.status != 200:
                    out["errors"].append(response.status)
                    if time.perf_counter() >= until:
                        break
                    continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            out["errors"].append(type(exc).__name__)
            if time.perf_counter() >= until:
                break
            continue
        out["ttfb"].append(((first or end) - began) * 1000)
        out["total"].append((end - began) * 1000)
        out["events"].append(events)


async def main(args: argparse.Namespace) -> None:
    host = urlsplit(args.url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen talks to loopback only")
    stream = args.mode == "sse"
    body = json.dumps(
        {
            "model": "llama3-8b",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": args.max_tokens,
            "stream": stream,
        }
    ).encode()
    out: dict[str, list] = {"ttfb": [], "total": [], "events": [], "errors": []}
    context = None
    if args.tls_dir:
        # The pod's certificate set (docs/tls.md): a MindIE listener wants a client certificate.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False
        context.load_verify_locations(f"{args.tls_dir}/ca.pem")
        context.load_cert_chain(f"{args.tls_dir}/cert.pem", f"{args.tls_dir}/cert.key.pem")
    connector = aiohttp.TCPConnector(limit=0, ssl=context or True)
    timeout = aiohttp.ClientTimeout(total=args.seconds + 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm the connections first, outside the measured window.
        warm: list[dict[str, list]] = [
            {"ttfb": [], "total": [], "events": [], "errors": []} for _ in range(args.concurrency)
        ]
        await asyncio.gather(*(worker(session, args.url, body, stream, 0, w) for w in warm))
        until = time.perf_counter() + args.seconds
        began = time.perf_counter()
        await asyncio.gather(*(worker(session, args.url, body, stream, until, out) for _ in range(args.concurrency)))
        out["seconds"] = time.perf_counter() - began  # type: ignore[assignment]
    json.dump(out, sys.stdout)


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--mode", choices=["json", "sse"], default="json")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-tokens", type=int, default=2)
    parser.add_argument("--tls-dir", help="folder of ca.pem, cert.pem, cert.key.pem for an https:// URL")
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
