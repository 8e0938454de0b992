"""/livez and /readyz while hostile clients work on supervisor_pd's HTTP port.

    python bench/attack_bench.py [--seconds 20] [--print-only]

A simulated 800I A2; the supervisor on a CPU of its own (as the plan's control CPUs place it in
production), the simulated stack and the attackers on the other. The prober asks as the kubelet
does: a new connection per probe, /livez and /readyz in turn every 10 ms, 3-s timeout (the
shipped probes' timeoutSeconds). Scenarios:

- quiet: nothing else;
- attack: 4 clients sending, one after another, 1 MiB gzip bodies that inflate to 1 GiB
  (`Content-Encoding: gzip`) to /v1/chat/completions, while 2,000 idle connections are held
  (a closed one is opened again at once);
- descriptors: the same 2,000 idle connections against a supervisor whose RLIMIT_NOFILE is 1,024
  (soft and hard), so the port cannot hold them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_bench import cpu_seconds, pct, started
from bench.report import update_section
from tests.simstack import http
from tests.superstack import SupervisorRun

MIB = 1 << 20
BOMB_CLIENTS = 4
IDLE = 2000
PROBE_EVERY = 0.01
PROBE_TIMEOUT = 3.0


def bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed (about 1 MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    return b"".join(packer.compress(zeros) for _ in range(1024)) + packer.flush()


async def _bombard(port: int, body: bytes, stop: float, statuses: Counter[str]) -> None:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            statuses["connect failed"] += 1
            await asyncio.sleep(0.01)
            continue
        try:
            writer.write(head + body)
            # Refused before the body was read: the reply is still there to read.
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 10)
            line = await asyncio.wait_for(reader.readline(), 10)
            statuses[line.split(b" ")[1].decode() if line.count(b" ") >= 2 else "no reply"] += 1
        except (OSError, TimeoutError):
            statuses["no reply"] += 1
        finally:
            writer.close()


async def _hold(port: int, stop: float, counts: Counter[str]) -> None:
    """One idle connection, opened again whenever the server closes it."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["connect failed"] += 1
            await asyncio.sleep(0.05)
            continue
        counts["opened"] += 1
        counts["open"] += 1
        try:
            await asyncio.wait_for(reader.read(1), max(stop - time.monotonic(), 0.01))
            counts["closed by the port"] += 1
        except (TimeoutError, OSError):
            pass
        finally:
            counts["open"] -= 1
            writer.close()


def attacker(port: int, seconds: float, bombs: int, idle: int, out: Any) -> None:
    """The attack, in a process of its own: its work must not slow the prober's clock."""

    body = bomb() if bombs else b""
    out.put("ready")

    async def main() -> dict[str, Any]:
        stop = time.monotonic() + seconds
        statuses: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while time.monotonic() < stop:
                peak = max(peak, counts["open"])
                await asyncio.sleep(0.1)

        tasks = [_bombard(port, body, stop, statuses) for _ in range(bombs)]
        tasks += [_hold(port, stop, counts) for _ in range(idle)]
        await asyncio.gather(watch(), *tasks)
        return {"bombs": dict(statuses), "idle": {**counts, "peak open": peak}, "bomb_bytes": len(body)}

    out.put(asyncio.run(main()))


def count_fds(pid: int, seconds: float, out: Any) -> None:
    most, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        most = max(most, len(os.listdir(f"/proc/{pid}/fd")))  # noqa: PTH208
        time.sleep(0.1)
    out.put(most)


def probe(port: int, seconds: float) -> dict[str, list[float | None]]:
    found: dict[str, list[float | None]] = {"/livez": [], "/readyz": []}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for path, times in found.items():
            began = time.perf_counter()
            code, _ = http("GET", f"http://127.0.0.1:{port}{path}", timeout=PROBE_TIMEOUT)
            times.append((time.perf_counter() - began) * 1000 if code == 200 else None)
            time.sleep(PROBE_EVERY)
    return found


def scenario(tmp: Path, seconds: float, bombs: int, idle: int, file_limit: int | None) -> dict[str, Any]:
    run = SupervisorRun(tmp)
    if file_limit is not None:
        start = run.start
        run.start = lambda *a, **k: start(*a, **{**k, "file_limit": file_limit})  # type: ignore[method-assign]
    with started(run, split=True) as others:
        pid = run.process.pid  # type: ignore[union-attr]
        result: dict[str, Any] = {}
        if bombs or idle:
            queue: Any = multiprocessing.get_context("fork").Queue()
            worker = multiprocessing.get_context("fork").Process(
                target=attacker, args=(run.ports.api, seconds + 4, bombs, idle, queue)
            )
            worker.start()
            os.sched_setaffinity(worker.pid, others)  # type: ignore[arg-type]
            assert queue.get(timeout=120) == "ready"  # the bomb is made
            time.sleep(2)  # the idle connections opened and the bombs flying: then measure
        # Descriptors are counted by a process of their own: listing 2,000 of them in a thread
        # here would hold the prober's GIL and show up as probe latency.
        counted: Any = multiprocessing.get_context("fork").Queue()
        counter = multiprocessing.get_context("fork").Process(target=count_fds, args=(pid, seconds, counted))
        counter.start()
        os.sched_setaffinity(counter.pid, others)  # type: ignore[arg-type]
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, others)  # the prober, as the kubelet: not on the supervisor's CPU
        try:
            cpu, began = cpu_seconds(pid), time.monotonic()
            result["probes"] = probe(run.ports.api, seconds)
            result["cpu"] = (cpu_seconds(pid) - cpu) / (time.monotonic() - began)
        finally:
            os.sched_setaffinity(0, mine)
        result["fds"] = counted.get(timeout=30)
        counter.join(10)
        if bombs or idle:
            result["attack"] = queue.get(timeout=120)
            worker.join(30)
        result["alive"] = run.process.poll() is None  # type: ignore[union-attr]
    return result


def rows(name: str, result: dict[str, Any]) -> list[str]:
    out = []
    for path, times in result["probes"].items():
        good = [t for t in times if t is not None]
        failed = len(times) - len(good)
        if not good:
            out.append(f"| {name} | `GET {path}` | {len(times)} | - | - | - | {failed} |")
            continue
        out.append(
            f"| {name} | `GET {path}` | {len(times)} | {pct(good, 0.5):.2f} ms | {pct(good, 0.99):.2f} ms | "
            f"{max(good):.2f} ms | {failed} |"
        )
    return out


def describe(result: dict[str, Any]) -> str:
    attack = result.get("attack")
    if not attack:
        return f"supervisor's open descriptors at most {result['fds']}, its CPU {result['cpu']:.0%}"
    bombs = ", ".join(f"{code}: {n}" for code, n in sorted(attack["bombs"].items())) or "none"
    idle = attack["idle"]
    return (
        f"bomb replies {bombs}; idle connections opened {idle.get('opened', 0)}, closed by the port "
        f"{idle.get('closed by the port', 0)}, at most {idle['peak open']} open at once, connect failures "
        f"{idle.get('connect failed', 0)}; supervisor's open descriptors at most {result['fds']}, its CPU "
        f"{result['cpu']:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of probing per scenario")
    parser.add_argument("--print-only", action="store_true", help="print the figures, do not write BENCHMARKS.md")
    parser.add_argument("--only", choices=["quiet", "attack", "descriptors"], help="one scenario, printed only")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sp-attack-bench-"))
    if args.only:
        shape = {"quiet": (0, 0, None), "attack": (BOMB_CLIENTS, IDLE, None), "descriptors": (0, IDLE, 1024)}
        try:
            result = scenario(tmp / args.only, args.seconds, *shape[args.only])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print("\n".join([*rows(args.only, result), describe(result)]))
        return
    try:
        quiet = scenario(tmp / "quiet", args.seconds, 0, 0, None)
        attack = scenario(tmp / "attack", args.seconds, BOMB_CLIENTS, IDLE, None)
        squeezed = scenario(tmp / "fds", args.seconds, 0, IDLE, 1024)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python bench/attack_bench.py" + (f" --seconds {args.seconds:g}" if args.seconds != 20.0 else "")
    body = "\n".join(
        [
            "## The HTTP port under attack: probes",
            "",
            f"Command: `{command}`. A simulated 800I A2; the supervisor on a CPU of its own, the simulated stack "
            "and the attackers (one process) on the other. Probes as the kubelet sends them: a new connection "
            "each, `/livez` and `/readyz` in turn every 10 ms, 3-s timeout; a failure is anything but 200 in "
            "time. *attack*: 4 clients sending 1 MiB gzip bodies that inflate to 1 GiB, one after another, "
            "while 2,000 idle connections are held (each opened again as soon as it is closed). *descriptors*: "
            "the 2,000 idle connections alone against a supervisor limited to 1,024 file descriptors. "
            "Target: p99 under 10 ms under attack.",
            "",
            "| scenario | probe | count | p50 | p99 | max | failed |",
            "|---|---|---|---|---|---|---|",
            *rows("quiet", quiet),
            *rows("attack", attack),
            *rows("descriptors (limit 1,024)", squeezed),
            "",
            f"- quiet: {describe(quiet)}.",
            f"- attack: {describe(attack)}.",
            f"- descriptors: {describe(squeezed)}.",
        ]
    )
    print(body)
    print(json.dumps({"alive": [quiet["alive"], attack["alive"], squeezed["alive"]]}), file=sys.stderr)
    if not args.print_only:
        update_section("attack", body)


if __name__ == "__main__":
    main()
