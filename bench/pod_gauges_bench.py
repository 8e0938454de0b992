"""What the pod's gauges (supervisor_pd_pod_*) add to a scrape of /metrics.

    python bench/pod_gauges_bench.py [--scrapes 1000] [--print-only]

Two simulated stacks of the same profile run side by side: one as shipped, one whose supervisor
leaves the gauges out (a `sitecustomize` on its PYTHONPATH replaces `MetricsEndpoint.pod_gauges`
with one that reads nothing; the product has no switch for it). One client scrapes them in turn
over a kept-alive connection each, as the endpoint picker does, so both see the same machine at
the same moments. The children's part is cached for the whole run, so every scrape is what the
picker's 50 ms polling gets between two refreshes of the children (every 2 s as shipped):
supervisor_pd's own families, the pod's gauges (every Server's /v1/status read at that moment)
and the cached children's text. (A refresh reads the statuses beside the children's /metrics,
which take longer: the gauges add nothing to it.) Reported per profile: latency
p50/p99 of each, the difference, and the supervisor's CPU time per scrape (/proc). Target: under
2 ms p99 added.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_bench import cpu_seconds, pct, started
from bench.report import update_section
from tests.simstack import free_base
from tests.superstack import SupervisorRun

GAUGE = b"\nsupervisor_pd_pod_requests_waiting "
# Every measured scrape is the picker's usual one (children cached); the refresh every 2 s runs the
# status reads beside the children's scrape, which takes longer, so it is left out of both sides.
# Health checks at 1 s rather than the tests' 0.2 s: less background work on the shared CPUs.
QUIET = {"SUPERVISOR_PD_METRICS_CACHE_SECONDS": "3600", "SUPERVISOR_PD_HEALTH_INTERVAL": "1"}
SHIM = """\
import sys

if sys.orig_argv[1:4] == ["-m", "supervisor_pd", "run"]:
    from supervisor_pd.api.metrics import MetricsEndpoint

    async def _no_pod_gauges(self, *args):
        return b""

    MetricsEndpoint.pod_gauges = _no_pod_gauges
"""


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


def measure(tmp: Path, profile: str, scrapes: int) -> str:
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
        cpu = {}
        for scraper in (a, b):
            cpu[scraper] = cpu_seconds(scraper.run.process.pid)  # type: ignore[union-attr]
        for i in range(scrapes):
            for scraper in (a, b) if i % 2 else (b, a):
                scraper.once()
        per = {s: (cpu_seconds(s.run.process.pid) - cpu[s]) / scrapes * 1000 for s in (a, b)}  # type: ignore[union-attr]
        assert GAUGE in a.body and GAUGE not in b.body, "the shim did not take the gauges out"
        servers = a.body.count(b'supervisor_pd_child_scrape_up{component="server"')
    return (
        f"| {profile}, {servers} Servers | {scrapes} | {pct(b.times, 0.5):.2f} / {pct(b.times, 0.99):.2f} ms | "
        f"{pct(a.times, 0.5):.2f} / {pct(a.times, 0.99):.2f} ms | "
        f"{pct(a.times, 0.5) - pct(b.times, 0.5):+.2f} / {pct(a.times, 0.99) - pct(b.times, 0.99):+.2f} ms | "
        f"{per[b]:.2f} / {per[a]:.2f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=1000, help="scrapes of each stack per profile")
    parser.add_argument("--print-only", action="store_true", help="print the table, write nothing")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="sp-pod-gauges-bench-"))
    rows = []
    for profile in ("800i-a2", "800i-a3"):
        rows.append(measure(tmp, profile, args.scrapes))
        print(rows[-1], file=sys.stderr)
    table = [
        "| stack | scrapes each | without the gauges p50 / p99 | with p50 / p99 | added p50 / p99 | "
        "supervisor CPU per scrape, without / with |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    if args.print_only:
        print("\n".join(table))
        return
    update_section(
        "pod-gauges",
        "\n".join(
            [
                "## The pod's gauges: what they add to /metrics",
                "",
                "Command: `python bench/pod_gauges_bench.py`. Two simulated stacks of one profile side by side, one "
                "with the gauges and one without (a `sitecustomize` takes them out; the product has no switch), "
                "scraped in turn over kept-alive connections; the children's part cached throughout (what the picker "
                "gets between two refreshes; a refresh reads the statuses beside the children, which are slower); "
                "each supervisor "
                "on a CPU of its own, the simulated stacks on the others. The 800I A3 row plans 16 one-chip "
                "Servers, the most /v1/status reads a scrape makes. Target: under 2 ms p99 added.",
                "",
                *table,
                "",
                f"Load average (1 min) when it started: {load:.2f}.",
            ]
        ),
    )
    print("\n".join(table))


if __name__ == "__main__":
    main()
