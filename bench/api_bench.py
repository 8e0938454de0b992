"""Figures for supervisor_pd's HTTP port, measured side by side in one run.

    python bench/api_bench.py [--seconds 5] [--no-nginx]

1. The inference proxy against the simulated Coordinator: the Coordinator's predict port
   directly, through supervisor_pd's port, and through nginx (Debian's, `proxy_buffering off`,
   keep-alive upstream) in front of the same Coordinator. Non-streaming requests/s and latency;
   SSE time to first byte, per-chunk cost and chunks/s.
2. The proxy's own ceiling: the same proxy code alone in a process pinned to one CPU, in front of
   an upstream that streams as fast as Python can (bench/firehose.py), against nginx on the same
   CPU and the upstream directly. The simulated Coordinator is itself Python and slower than the
   proxy, so only this shows what the proxy can carry.
3. Probe latency while 256 streams run through the port (kubelet-style: a new connection per probe).
4. `/metrics` with 16 Servers: a full scrape of every child (cache off) and the cached answer.

Everything talks to 127.0.0.1 only and stops by itself. Client, proxy and upstreams share this
machine's CPUs, so absolute figures are pessimistic; the differences are what matter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from tests.simstack import free_base, http, wait_until
from tests.superstack import SupervisorRun

BENCH = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    upstream coordinator {{ server 127.0.0.1:{upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://coordinator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    return free_base(1)


def wait_port(port: int, timeout: float = 20.0) -> None:
    def up() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False

    wait_until(up, timeout, what=f"port {port}")


@contextlib.contextmanager
def process(argv: list[str], cpus: set[int] | None = None, env: dict[str, str] | None = None) -> Iterator[int]:
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        if cpus:
            os.sched_setaffinity(child.pid, cpus)
        yield child.pid
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextlib.contextmanager
def nginx(upstream: int, cpus: set[int] | None = None) -> Iterator[tuple[int, int]]:
    """nginx with one worker in front of 127.0.0.1:upstream; yields (port, worker pid)."""
    prefix = Path(tempfile.mkdtemp(prefix="sp-nginx-"))
    port = free_port()
    (prefix / "nginx.conf").write_text(NGINX_CONF.format(prefix=prefix, upstream=upstream, port=port))
    with process(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]) as master:
        wait_port(port)
        children = Path(f"/proc/{master}/task/{master}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
        if cpus:
            for pid in [master, *workers]:
                os.sched_setaffinity(pid, cpus)
        yield port, workers[0] if workers else master
    shutil.rmtree(prefix, ignore_errors=True)


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` onto `cpus` (sched_setaffinity on a pid moves one thread only)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, OSError):
            os.sched_setaffinity(int(task.name), cpus)


@contextlib.contextmanager
def started(run: SupervisorRun, split: bool) -> Iterator[set[int]]:
    """Start `run`; with `split`, the way production places it: the supervisor on a CPU of its own
    (the plan's control CPUs), its children (here: the whole simulated stack) on the others.
    Yields the CPUs for load generators (the children's side)."""
    cpus = sorted(os.sched_getaffinity(0))
    children, own = (set(cpus[:-1]), {cpus[-1]}) if split and len(cpus) > 1 else (set(cpus), set(cpus))
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, children)  # inherited by the supervisor, and so by every child it starts
    try:
        run.start()
    finally:
        os.sched_setaffinity(0, mine)
    try:
        run.wait_ready(timeout=90)
        if split:
            pin_process(run.process.pid, own)  # type: ignore[union-attr]
        yield children
    finally:
        run.stop(60)
        run.cleanup()


def load(
    url: str,
    mode: str,
    concurrency: int,
    seconds: float,
    max_tokens: int = 2,
    cpus: set[int] | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(BENCH / "loadgen.py"),
        url,
        "--mode",
        mode,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
        "--max-tokens",
        str(max_tokens),
        *extra,
    ]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if cpus:
        os.sched_setaffinity(child.pid, cpus)
    out, err = child.communicate(timeout=seconds + 120)
    if child.returncode != 0:
        raise RuntimeError(f"loadgen failed: {err[-2000:]}")
    return json.loads(out)  # type: ignore[no-any-return]


def measure(
    url: str, seconds: float, pid: int | None, chunks: int, cpus: set[int] | None = None, extra: tuple[str, ...] = ()
) -> dict[str, float]:
    """One target: json C=1 and C=16, sse C=1 and C=16; CPU of `pid` during the C=16 SSE run."""
    figures: dict[str, float] = {}
    one = load(url, "json", 1, seconds, cpus=cpus, extra=extra)
    figures["json_p50"], figures["json_p99"] = pct(one["total"], 0.5), pct(one["total"], 0.99)
    many = load(url, "json", 16, seconds, cpus=cpus, extra=extra)
    figures["json_rps"] = len(many["total"]) / many["seconds"]
    figures["json_errors"] = len(one["errors"]) + len(many["errors"])
    one = load(url, "sse", 1, seconds, max_tokens=chunks, cpus=cpus, extra=extra)
    figures["ttfb_p50"], figures["ttfb_p99"] = pct(one["ttfb"], 0.5), pct(one["ttfb"], 0.99)
    figures["stream_p50"] = pct(one["total"], 0.5)
    figures["events"] = statistics.median(one["events"])
    before = cpu_seconds(pid) if pid else 0.0
    many = load(url, "sse", 16, seconds, max_tokens=chunks, cpus=cpus, extra=extra)
    spent = cpu_seconds(pid) - before if pid else 0.0
    events = sum(many["events"])
    figures["chunks_per_s"] = events / many["seconds"]
    figures["cpu_us_per_chunk"] = spent / events * 1e6 if pid and events else float("nan")
    figures["cpu_share"] = spent / many["seconds"] if pid else float("nan")
    figures["sse_errors"] = len(one["errors"]) + len(many["errors"])
    return figures


def compare(rows: dict[str, dict[str, float]]) -> list[str]:
    direct = rows["direct"]
    lines = [
        "| path | req/s (C=16) | latency p50 / p99 (C=1) | added p50 | TTFB p50 / p99 | added TTFB p50 | "
        "stream p50 | added per chunk | chunks/s (C=16) | CPU per chunk | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        added = row["json_p50"] - direct["json_p50"]
        added_ttfb = row["ttfb_p50"] - direct["ttfb_p50"]
        per_chunk = ((row["stream_p50"] - direct["stream_p50"]) - added_ttfb) / max(1.0, row["events"] - 1) * 1000
        same = name == "direct"
        cpu = row["cpu_us_per_chunk"]
        cpu_text = "-" if cpu != cpu else f"{cpu:.1f} µs"  # NaN: not measured
        lines.append(
            f"| {name} | {row['json_rps']:,.0f} | {row['json_p50']:.2f} / {row['json_p99']:.2f} ms | "
            f"{'-' if same else f'{added:+.2f} ms'} | {row['ttfb_p50']:.2f} / {row['ttfb_p99']:.2f} ms | "
            f"{'-' if same else f'{added_ttfb:+.2f} ms'} | {row['stream_p50']:.2f} ms | "
            f"{'-' if same else f'{per_chunk:+.1f} µs'} | {row['chunks_per_s']:,.0f} | "
            f"{cpu_text} | "
            f"{int(row['json_errors'] + row['sse_errors'])} |"
        )
    return lines


# --- the scenarios -----------------------------------------------------------------------------------


def against_the_coordinator(tmp: Path, seconds: float, use_nginx: bool) -> list[str]:
    run = SupervisorRun(
        tmp,
        env={"SUPERVISOR_PD_SIM_TTFT_MS": "0", "SUPERVISOR_PD_SIM_TPOT_MS": "0", "SUPERVISOR_PD_SIM_MAX_TOKENS": "64"},
    )
    run.start()
    try:
        run.wait_ready(timeout=60)
        supervisor = run.process.pid  # type: ignore[union-attr]
        rows = {"direct": measure(f"http://127.0.0.1:{run.ports.predict}/v1/chat/completions", seconds, None, 64)}
        rows["supervisor_pd"] = measure(
            f"http://127.0.0.1:{run.ports.api}/v1/chat/completions", seconds, supervisor, 64
        )
        if use_nginx:
            with nginx(run.ports.predict) as (port, worker):
                rows["nginx"] = measure(f"http://127.0.0.1:{port}/v1/chat/completions", seconds, worker, 64)
    finally:
        run.stop(60)
        run.cleanup()
    return [
        "### Against the simulated Coordinator",
        "",
        "Full simulated stack (4 Servers, token delays 0), chat completions: non-streaming with 2 tokens; "
        "streams of 64 chunks. `added` = this path minus direct. CPU per chunk is the proxy process's "
        "(for supervisor_pd: the whole supervisor, health checks included).",
        "",
        *compare(rows),
    ]


def proxy_ceiling(seconds: float, use_nginx: bool) -> list[str]:
    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpu, others = {cpus[-1]}, set(cpus[:-1]) or {cpus[-1]}
    upstream = free_port()
    with process([sys.executable, str(BENCH / "firehose.py"), str(upstream)], cpus=others):
        wait_port(upstream)
        rows = {"direct": measure(f"http://127.0.0.1:{upstream}/v1/chat/completions", seconds, None, 128, others)}
        port = free_port()
        with process([sys.executable, str(BENCH / "proxy_alone.py"), str(upstream), str(port)], cpus=proxy_cpu) as pid:
            wait_port(port)
            rows["supervisor_pd proxy"] = measure(
                f"http://127.0.0.1:{port}/v1/chat/completions", seconds, pid, 128, others
            )
        if use_nginx:
            with nginx(upstream, cpus=proxy_cpu) as (port, worker):
                rows["nginx"] = measure(f"http://127.0.0.1:{port}/v1/chat/completions", seconds, worker, 128, others)
    row = rows["supervisor_pd proxy"]
    ceiling = 1e6 / row["cpu_us_per_chunk"] if row["cpu_us_per_chunk"] == row["cpu_us_per_chunk"] else float("nan")
    return [
        "### The proxy's own ceiling (one core)",
        "",
        f"The proxy alone (`bench/proxy_alone.py`: the same `Proxy` and middleware) pinned to CPU {cpus[-1]}, in "
        "front of `bench/firehose.py` (128 chunks of ~60 B per stream, one write each); upstream and load "
        "generator on the other CPU(s). nginx is pinned the same way.",
        "",
        *compare(rows),
        "",
        f"The proxy used {row['cpu_share'] * 100:.0f} % of its core for {row['chunks_per_s']:,.0f} chunks/s: "
        f"{row['cpu_us_per_chunk']:.1f} µs of CPU per chunk, i.e. **{ceiling:,.0f} chunks/s per core** "
        "when the core is the limit.",
    ]


def probes_under_streams(tmp: Path, seconds: float, split: bool) -> list[str]:
    run = SupervisorRun(tmp, env={"SUPERVISOR_PD_SIM_TTFT_MS": "50", "SUPERVISOR_PD_SIM_TPOT_MS": "50"})
    duration = max(10.0, seconds * 2)
    with started(run, split) as children:
        argv = [
            sys.executable,
            str(BENCH / "loadgen.py"),
            f"http://127.0.0.1:{run.ports.api}/v1/chat/completions",
            "--mode",
            "sse",
            "--concurrency",
            "256",
            "--seconds",
            str(duration),
            "--max-tokens",
            "100",
        ]
        loader = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.sched_setaffinity(loader.pid, children)

        def streams() -> float:
            _, data = run.api("GET", "/metrics")
            for line in data.decode().splitlines():
                if line.startswith("supervisor_pd_streams_in_flight "):
                    return float(line.split()[1])
            return 0.0

        wait_until(lambda: streams() >= 250, 60, interval=0.2, what="256 streams")
        in_flight = [streams()]
        latencies: dict[str, list[float]] = {"/livez": [], "/readyz": [], "/startupz": []}
        failures = dict.fromkeys([*latencies, "exec"], 0)
        end = time.monotonic() + duration - 3
        while time.monotonic() < end:
            for path, found in latencies.items():
                began = time.perf_counter()
                code, _ = http("GET", f"http://127.0.0.1:{run.ports.api}{path}", timeout=5)
                found.append((time.perf_counter() - began) * 1000)
                failures[path] += code != 200
            time.sleep(0.01)
        in_flight.append(streams())
        execs = []
        for _ in range(10):
            began = time.perf_counter()
            result = run.cli("probe", "readiness")
            execs.append((time.perf_counter() - began) * 1000)
            failures["exec"] += result.returncode != 0
        in_flight.append(streams())
        out, _ = loader.communicate(timeout=duration + 120)
        done = json.loads(out)
    where = (
        "supervisor on its own CPU, the simulated stack and the load generator on the other"
        if split
        else "everything sharing every CPU"
    )
    lines = [
        f"#### {where}",
        "",
        f"Streams in flight when sampled: {', '.join(f'{n:.0f}' for n in in_flight)}; "
        f"{len(done['total'])} streams completed, {len(done['errors'])} errors.",
        "",
        "| probe | count | p50 | p99 | max | failed |",
        "|---|---|---|---|---|---|",
    ]
    for path, found in latencies.items():
        lines.append(
            f"| `GET {path}` | {len(found)} | {pct(found, 0.5):.2f} ms | {pct(found, 0.99):.2f} ms | "
            f"{max(found):.2f} ms | {failures[path]} |"
        )
    lines.append(
        f"| `supervisor-pd probe readiness` (exec, whole process) | {len(execs)} | {pct(execs, 0.5):.0f} ms | "
        f"{pct(execs, 0.99):.0f} ms | {max(execs):.0f} ms | {failures['exec']} |"
    )
    return lines


def children_directly(run: SupervisorRun, count: int = 300) -> list[float]:
    """Scrape every child's own /metrics in parallel, as the supervisor does, without merging."""
    import asyncio

    import aiohttp

    urls = [f"http://127.0.0.1:{run.server_config(i)['metricsPort']}/metrics" for i in range(1, 17)]
    urls.append(f"http://127.0.0.1:{run.ports.external}/metrics")

    async def scrape() -> list[float]:
        times = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one(url: str) -> None:
                async with session.get(url) as response:
                    await response.text()

            for _ in range(count):
                began = time.perf_counter()
                await asyncio.gather(*(one(url) for url in urls))
                times.append((time.perf_counter() - began) * 1000)
        return times

    return asyncio.run(scrape())


def metrics_with_16_servers(tmp: Path, split: bool) -> list[str]:
    def one_world(files: dict[str, Any]) -> None:
        files["config.json"]["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] = 1

    rows = []
    floor: list[float] = []
    for cache in ("0", "2"):
        folder = tmp / f"cache{cache}-{'split' if split else 'shared'}"
        run = SupervisorRun(
            folder, profile="800i-a3", change=one_world, env={"SUPERVISOR_PD_METRICS_CACHE_SECONDS": cache}
        )
        with started(run, split):
            url = f"http://127.0.0.1:{run.ports.api}/metrics"
            http("GET", url)
            times, size, samples = [], 0, 0
            for _ in range(300):
                began = time.perf_counter()
                code, data = http("GET", url, timeout=10)
                times.append((time.perf_counter() - began) * 1000)
                assert code == 200
                size = len(data)
                samples = sum(1 for line in data.splitlines() if line and not line.startswith(b"#"))
            up = sum(
                1
                for line in data.decode().splitlines()
                if line.startswith("supervisor_pd_child_scrape_up{") and line.endswith(" 1")
            )
            if cache == "0":
                floor = children_directly(run)
        label = (
            "every scrape reaches all 17 children (cache off)"
            if cache == "0"
            else "children cached (2 s, the default), ours rendered fresh"
        )
        rows.append(
            f"| {label} | {len(times)} | {pct(times, 0.5):.1f} ms | {pct(times, 0.99):.1f} ms | "
            f"{max(times):.1f} ms | {size / 1024:.0f} KiB, {samples} samples, child_scrape_up=1 for {up} |"
        )
    rows.append(
        f"| the same 17 children scraped directly, in parallel, nothing merged (the floor) | {len(floor)} | "
        f"{pct(floor, 0.5):.1f} ms | {pct(floor, 0.99):.1f} ms | {max(floor):.1f} ms | |"
    )
    where = "supervisor on its own CPU, the simulated stack on the other" if split else "everything sharing every CPU"
    return [
        f"#### {where}",
        "",
        "| scrape | count | p50 | p99 | max | body |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load run")
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx rows")
    parser.add_argument(
        "--print-only", choices=["metrics", "probes", "ceiling"], help="run one part, print it, write nothing"
    )
    args = parser.parse_args()
    use_nginx = not args.no_nginx and shutil.which("nginx") is not None
    if not args.no_nginx and not use_nginx:
        print("nginx not found (Debian: apt-get install nginx-light): its rows are skipped", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="sp-api-bench-"))
    if args.print_only == "metrics":
        print("\n".join(metrics_with_16_servers(tmp, split=True)))
        return
    if args.print_only == "probes":
        print("\n".join(probes_under_streams(tmp, args.seconds, split=True)))
        return
    if args.print_only == "ceiling":
        print("\n".join(proxy_ceiling(args.seconds, use_nginx)))
        return
    try:
        sections = [
            against_the_coordinator(tmp / "stack", args.seconds, use_nginx),
            proxy_ceiling(args.seconds, use_nginx),
            [
                "### Probes under 256 concurrent streams",
                "",
                "256 streamed chat completions (100 tokens, 50 ms each) kept going through the port; meanwhile a "
                "client probes every 10 ms with a new connection per probe, as the kubelet does. In production "
                "the supervisor runs on the plan's control CPUs, apart from the Servers; on this 2-CPU machine "
                "the simulated Servers and Coordinator (Python, far hungrier for CPU than the real ones on "
                "those CPUs) and the load generator either share every CPU with it or take the other one. "
                "Target: p99 under 5 ms.",
                "",
                *probes_under_streams(tmp / "probes-split", args.seconds, split=True),
                "",
                *probes_under_streams(tmp / "probes-shared", args.seconds, split=False),
            ],
            [
                "### /metrics with 16 Servers",
                "",
                "Simulated 800I A3, 16 one-chip Servers + Coordinator; 300 scrapes one after another. A scrape "
                "that is not cached waits for the slowest child: here the simulated Coordinator, whose own "
                "/metrics scrapes all 16 Servers first. Target: p99 under 20 ms.",
                "",
                *metrics_with_16_servers(tmp / "metrics", split=True),
                "",
                *metrics_with_16_servers(tmp / "metrics", split=False),
            ],
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python bench/api_bench.py" + (f" --seconds {args.seconds:g}" if args.seconds != 5.0 else "")
    body = "\n".join(
        [
            "## The HTTP port: proxy, probes, metrics",
            "",
            f"Command: `{command}` (nginx: Debian's `nginx-light`, one worker, `proxy_buffering off`, keep-alive "
            "upstream). Targets: added time to first byte under 1 ms p50, per-chunk cost under 30 µs, at least "
            "40k SSE chunks/s on one core; probe p99 under 5 ms with 256 streams; `/metrics` with 16 Servers "
            "under 20 ms p99.",
            "",
        ]
        + [line for section in sections for line in [*section, ""]]
    )
    print(body)
    update_section("api", body)


if __name__ == "__main__":
    main()
