"""What the pod's gauges (supervisor_pd_pod_*) add to a scrape of /metrics.

    python bench/pod_gauges_bench.py [--scrapes 1000] [--print-only]

1. /metrics with and without the gauges. Two simulated stacks of the same profile run side by
   side: one as shipped, one whose supervisor leaves the gauges out (a `sitecustomize` on its
   PYTHONPATH replaces `MetricsEndpoint.pod_gauges` with one that reads nothing; the product has
   no switch for it). One client scrapes them in turn over a kept-alive connection each, as the
   endpoint picker does, so both see the same machine at the same moments. The children's part is
   cached for the whole run, so every scrape is what the picker's 50 ms polling gets between two
   refreshes of the children (every 2 s as shipped): supervisor_pd's own families, the pod's gauges
   (every Server's /v1/status read at that moment) and the cached children's text. (A refresh reads
   the statuses beside the children's /metrics, which take longer: the gauges add nothing to it.)
   Reported: latency p50/p99 of each and the difference, and the supervisor's CPU time per scrape.
2. The gauges' step alone (every Server's /v1/status read, counted, formatted: the code /metrics
   runs), from this process pinned to the supervisor's CPU, against the simulated Servers and
   against a stand-in that answers MindIE's body at once from one process on the other CPUs. The
   second is supervisor_pd's own cost; the first adds the simulated Servers' answering, Python
   processes sharing one CPU, which MindIE's Servers do from their own cores.

Target: under 2 ms p99 added.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_bench import cpu_seconds, pct, started
from bench.report import update_section
from supervisor_pd.api.podgauges import StatusTarget, gauges, read_loads, render
from supervisor_pd.api.statusclient import StatusClient
from tests.factories import mindie_status
from tests.simstack import free_base, wait_until
from tests.superstack import SupervisorRun

GAUGE = b"\nsupervisor_pd_pod_requests_waiting "
# Every measured scrape is the picker's usual one (children cached). Health checks at 1 s rather
# than the tests' 0.2 s: less background work on the shared CPUs.
QUIET = {"SUPERVISOR_PD_METRICS_CACHE_SECONDS": "3600", "SUPERVISOR_PD_HEALTH_INTERVAL": "1"}
SHIM = """\
import sys

if sys.orig_argv[1:4] == ["-m", "supervisor_pd", "run"]:
    from supervisor_pd.api.metrics import MetricsEndpoint

    async def _no_pod_gauges(self, *args):
        return b""

    MetricsEndpoint.pod_gauges = _no_pod_gauges
"""
# What a MindIE Server's /v1/status answers (MindIE-LLM http_handler.cpp:247-316).
STATUS = json.dumps(mindie_status()).encode()


READING = (
    "Reading them: the stand-in rows are supervisor_pd's own cost, the one the target is about. The other "
    "rows add the wait for the slowest Server's answer, which a scrape takes (bounded at 250 ms): the "
    "simulated Servers answer from one shared CPU, a MindIE Server from a C++ handler that reads its "
    "scheduler's counters without a lock (MindIE-LLM scheduler.cpp:1733-1748, llm_engine.cpp:814-823). "
    "The p99 differences of the first table are mostly the shared machine's noise."
)


def one_world(files: dict[str, Any]) -> None:
    files["config.json"]["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] = 1


class Scraper:
    def __init__(self, run: SupervisorRun) -> None:
        self.run = run
        self.connection = http.client.HTTPConnection("127.0.0.1", run.ports.api, timeout=10)
        self.times: list[float] = []
        self.body = b""

    def once(self) -> None:
        began = time.perf_counter()
        self.connection.request("GET", "/metrics")
        response = self.connection.getresponse()
        body = response.read()
        self.times.append((time.perf_counter() - began) * 1000)
        assert response.status == 200, response.status
        self.body = body


def step_alone(found: list[StatusTarget], count: int, cpus: set[int]) -> list[float]:
    """The gauges' whole step, `count` times, from this process pinned to `cpus`."""

    async def steps() -> list[float]:
        client = StatusClient(None)
        times = []
        try:
            for i in range(count + 50):
                began = time.perf_counter()
                loads = await read_loads(client, found)
                render(gauges(loads, 0, True))
                if i >= 50:
                    times.append((time.perf_counter() - began) * 1000)
                assert len(loads) == len(found), "a Server did not answer"
        finally:
            client.close()
        return times

    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        return asyncio.run(steps())
    finally:
        os.sched_setaffinity(0, mine)


def stack_targets(run: SupervisorRun) -> list[StatusTarget]:
    indexes = sorted(int(path.stem[6:]) for path in run.out.glob("config[0-9]*.json"))
    return [
        StatusTarget(f"server-{i}", "127.0.0.1", run.server_config(i)["managementPort"], False, None) for i in indexes
    ]


def measure(tmp: Path, profile: str, scrapes: int) -> tuple[str, str]:
    shim = tmp / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)
    change = one_world if profile == "800i-a3" else None
    with_gauges = SupervisorRun(tmp / f"{profile}-with", profile=profile, change=change, env=QUIET)
    free_base(256)  # 16 Servers plan past the run's 64-port block: keep the next run's ports clear of them
    without = SupervisorRun(
        tmp / f"{profile}-without", profile=profile, change=change, env={**QUIET, "PYTHONPATH": path}
    )
    with ExitStack() as stack:
        for run in (with_gauges, without):
            stack.enter_context(started(run, split=True))
        a, b = Scraper(with_gauges), Scraper(without)
        for _ in range(50):  # connections made, caches filled, both warm
            a.once()
            b.once()
        a.times.clear()
        b.times.clear()
        cpu = {scraper: cpu_seconds(scraper.run.process.pid) for scraper in (a, b)}  # type: ignore[union-attr]
        for i in range(scrapes):
            for scraper in (a, b) if i % 2 else (b, a):
                scraper.once()
        per = {s: (cpu_seconds(s.run.process.pid) - cpu[s]) / scrapes * 1000 for s in (a, b)}  # type: ignore[union-attr]
        assert GAUGE in a.body and GAUGE not in b.body, "the shim did not take the gauges out"
        found = stack_targets(with_gauges)
        alone = step_alone(found, scrapes, os.sched_getaffinity(with_gauges.process.pid))  # type: ignore[union-attr]
    servers = len(found)
    scrape_row = (
        f"| {profile}, {servers} Servers | {scrapes} | {pct(b.times, 0.5):.2f} / {pct(b.times, 0.99):.2f} ms | "
        f"{pct(a.times, 0.5):.2f} / {pct(a.times, 0.99):.2f} ms | "
        f"{pct(a.times, 0.5) - pct(b.times, 0.5):+.2f} / {pct(a.times, 0.99) - pct(b.times, 0.99):+.2f} ms | "
        f"{per[b]:.2f} / {per[a]:.2f} ms |"
    )
    return scrape_row, step_row(f"{servers} simulated Servers ({profile})", alone)


def step_row(label: str, times: list[float]) -> str:
    return f"| {label} | {len(times)} | {pct(times, 0.5):.2f} ms | {pct(times, 0.99):.2f} ms | {max(times):.2f} ms |"


def standin(servers: int, count: int) -> str:
    """The step against one process answering MindIE's /v1/status at once on `servers` ports, on
    the CPUs other than the supervisor's."""
    cpus = sorted(os.sched_getaffinity(0))
    own, others = {cpus[-1]}, set(cpus[:-1]) or {cpus[-1]}
    ports = [free_base(1) for _ in range(servers)]
    process = subprocess.Popen(
        [sys.executable, __file__, "--standin", *map(str, ports)], preexec_fn=lambda: os.sched_setaffinity(0, others)
    )
    try:
        wait_until(lambda: all(_answers(port) for port in ports), 20, what="the stand-in's ports")
        found = [StatusTarget(f"server-{i}", "127.0.0.1", port, False, None) for i, port in enumerate(ports, 1)]
        return step_row(f"{servers} stand-ins answering at once", step_alone(found, count, own))
    finally:
        process.terminate()
        process.wait(10)


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/v1/status")
        return connection.getresponse().status == 200
    except OSError:
        return False


def serve(ports: list[int]) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(STATUS), STATUS)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        for port in ports:
            await asyncio.start_server(answer, "127.0.0.1", port)
        await asyncio.Event().wait()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=1000, help="scrapes of each stack per profile")
    parser.add_argument("--print-only", action="store_true", help="print the tables, write nothing")
    parser.add_argument("--standin", type=int, nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.standin:
        serve(args.standin)
        return
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="sp-pod-gauges-bench-"))
    scrape_rows, step_rows = [], []
    for profile in ("800i-a2", "800i-a3"):
        scrape, step = measure(tmp, profile, args.scrapes)
        scrape_rows.append(scrape)
        step_rows.append(step)
        print(scrape, step, sep="\n", file=sys.stderr)
    step_rows += [standin(servers, args.scrapes) for servers in (4, 16)]
    tables = [
        "| stack | scrapes each | without the gauges p50 / p99 | with p50 / p99 | added p50 / p99 | "
        "supervisor CPU per scrape, without / with |",
        "|---|---|---|---|---|---|",
        *scrape_rows,
        "",
        "The gauges' step alone, on the supervisor's CPU:",
        "",
        "| read from | steps | p50 | p99 | max |",
        "|---|---|---|---|---|",
        *step_rows,
    ]
    after = os.getloadavg()[0]
    if args.print_only:
        print("\n".join(tables))
        print(f"load average (1 min): {load:.2f} before, {after:.2f} after", file=sys.stderr)
        return
    update_section(
        "pod-gauges",
        "\n".join(
            [
                "## The pod's gauges: what they add to /metrics",
                "",
                "Command: `python bench/pod_gauges_bench.py`. Two simulated stacks of one profile side by side, one "
                "with the gauges and one without (a `sitecustomize` takes them out; the product has no switch), "
                "scraped in turn over kept-alive connections, the children's part cached throughout (what the "
                "picker gets between two refreshes); each supervisor on a CPU of its own, the simulated stacks "
                "on the others. The 800I A3 rows plan 16 one-chip Servers, the most /v1/status reads a scrape "
                "makes. Then the gauges' whole step (every Server's /v1/status read, counted, formatted) alone, "
                "from a process on the supervisor's CPU: against the stacks' simulated Servers (Python processes "
                "sharing one CPU: a read waits for the slowest to be scheduled), and against a stand-in answering "
                "at once (supervisor_pd's own cost). In a scrape the step runs while supervisor_pd formats its "
                "own families. Target: under 2 ms p99 added.",
                "",
                *tables,
                "",
                READING,
                "",
                f"Load average (1 min): {load:.2f} when it started, {after:.2f} when it ended (the bench's own "
                "stacks included).",
            ]
        ),
    )
    print("\n".join(tables))


if __name__ == "__main__":
    main()
