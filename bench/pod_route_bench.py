"""What an endpoint picker's poll costs: GET /metrics against GET /metrics/pod.

    python bench/pod_route_bench.py [--scrapes 1000] [--print-only]

The Gateway API Inference Extension's endpoint picker reads every pod every 50 ms. One simulated
stack per profile, its supervisor on a CPU of its own; one client asks the two routes in turn over
one kept-alive connection each, children's part of /metrics at its shipped 2 s cache. Reported:
latency p50/p99 and the supervisor's CPU time per request, and the body's size.
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

QUIET = {"SUPERVISOR_PD_HEALTH_INTERVAL": "1"}


def one_world(files: dict[str, Any]) -> None:
    files["config.json"]["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] = 1


def measure(tmp: Path, profile: str, scrapes: int) -> list[str]:
    change = one_world if profile == "800i-a3" else None
    free_base(256)  # 16 one-chip Servers plan past one 64-port block
    run = SupervisorRun(tmp / profile, profile=profile, change=change, env=QUIET)
    rows = []
    with ExitStack() as stack:
        stack.enter_context(started(run, split=True))
        assert run.process is not None
        pid = run.process.pid
        links = {path: http.client.HTTPConnection("127.0.0.1", run.ports.api, timeout=10) for path in PATHS}
        times: dict[str, list[float]] = {path: [] for path in PATHS}
        cpu = dict.fromkeys(PATHS, 0.0)
        size = dict.fromkeys(PATHS, 0)
        for i in range(scrapes + 50):
            for path in PATHS if i % 2 else PATHS[::-1]:
                before = cpu_seconds(pid)
                began = time.perf_counter()
                links[path].request("GET", path)
                response = links[path].getresponse()
                body = response.read()
                took = time.perf_counter() - began
                assert response.status == 200, (path, response.status)
                if i >= 50:  # connections made, caches warm
                    times[path].append(took * 1000)
                    cpu[path] += cpu_seconds(pid) - before
                    size[path] = len(body)
        servers = sum(1 for p in run.status()["processes"] if p["component"] == "server")
        for path in PATHS:
            rows.append(
                f"| {profile}, {servers} Servers | `{path}` | {scrapes} | {pct(times[path], 0.5):.2f} / "
                f"{pct(times[path], 0.99):.2f} ms | {cpu[path] / scrapes * 1000:.2f} ms | "
                f"{size[path] / 1024:.1f} KiB |"
            )
    return rows


PATHS = ("/metrics", "/metrics/pod")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=1000, help="requests of each route per profile")
    parser.add_argument("--print-only", action="store_true", help="print the table, write nothing")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="sp-pod-route-bench-"))
    rows = [row for profile in ("800i-a2", "800i-a3") for row in measure(tmp, profile, args.scrapes)]
    table = [
        "| stack | route | requests | p50 / p99 | supervisor CPU per request | body |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    after = os.getloadavg()[0]
    print("\n".join(table))
    if args.print_only:
        return
    update_section(
        "pod-route",
        "\n".join(
            [
                "## An endpoint picker's poll: /metrics against /metrics/pod",
                "",
                "Command: `python bench/pod_route_bench.py`. One simulated stack per profile, its supervisor on a "
                "CPU of its own; the two routes asked in turn over a kept-alive connection each, the children's "
                "part of /metrics cached as shipped (2 s). The picker polls every 50 ms: 20 polls a second at the "
                "CPU per request below.",
                "",
                *table,
                "",
                f"Load average (1 min): {load:.2f} when it started, {after:.2f} when it ended.",
            ]
        ),
    )


if __name__ == "__main__":
    main()
