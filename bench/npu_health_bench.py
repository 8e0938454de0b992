"""NPU and link health: what one collection costs with 16 chips, and probe latency under each fault.

    python bench/npu_health_bench.py [--collections 20] [--probes 300]

Collector: the simulated 800I A3 (16 chips, every device IP real), discovered and planned as
`supervisor-pd run --simulate 800i-a3` does, then `collect()` (runtime/npucollect.py) run back to
back with the real ToolRunner on the simulated npu-smi and hccn_tool: 33 tool runs each. Reported
per collection: wall time; the CPU of this process (every thread: spawning, waiting, parsing), which
is supervisor_pd's own cost; the CPU of the tool processes, which is the simulator's (shell
scripts printing precomputed answers while no fault is set), not npu-smi's.

Probes: `supervisor-pd run --simulate 800i-a2` with a collection every 0.3 s (each tool within 3 s);
for each fault written into the simulated host's run/host_faults, `GET /readyz` on a keep-alive
connection, one after another, `--probes` times, starting once the fault has been seen (a hung tool:
at once, so the probes fall while it hangs).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from supervisor_pd.api.npumetrics import NpuCollector
from supervisor_pd.pipeline import prepare
from supervisor_pd.runtime.npucollect import CONCURRENCY, ChipTarget, collect
from supervisor_pd.runtime.toolrun import ToolRunner
from supervisor_pd.settings import load_settings
from supervisor_pd.simulator.hostfaults import clear_host_faults, write_host_faults
from tests.simstack import wait_until
from tests.superstack import running

FAULTS = {
    "none": [],
    "a chip Alarm (3:unhealthy)": ["3:unhealthy"],
    "a link DOWN (5:link-down)": ["5:link-down"],
    "npu-smi hangs": ["npu-smi:hang"],
    "hccn_tool hangs": ["hccn_tool:hang"],
    "npu-smi prints garbage": ["npu-smi:garbage"],
}


def collector(collections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(simulate="800i-a3", state_dir=Path(tmp))
        prepared = prepare(settings, "plan", lock=False)
        targets = tuple(
            ChipTarget(d.npu_id, d.chip_id, d.phy_id, d.device_ip_source not in ("", "placeholder"))
            for server in prepared.plan.servers
            for d in server.devices
        )
        runner = ToolRunner(prepared.environ)
        walls, own, tools, runs = [], [], [], 0

        async def measure() -> None:
            nonlocal runs
            limiter = anyio.CapacityLimiter(CONCURRENCY)
            await collect(targets, runner.run, 10.0, limiter)  # warm: the tools' first start
            for _ in range(collections):
                before, children, wall = time.process_time(), os.times(), time.monotonic()
                found = await collect(targets, runner.run, 10.0, limiter)
                walls.append(time.monotonic() - wall)
                own.append(time.process_time() - before)
                after = os.times()
                tools.append(
                    after.children_user + after.children_system - children.children_user - children.children_system
                )
                assert not found.failures, found.failures
                assert all(chip.reading is not None and chip.link == "UP" for chip in found.chips)
                runs = found.runs

        anyio.run(measure)
    return {
        "chips": len(targets),
        "runs": runs,
        "wall": statistics.median(walls),
        "own": statistics.median(own),
        "own_max": max(own),
        "tools": statistics.median(tools),
        "render": render_cost(),
    }


def render_cost() -> float:
    """One scrape's NPU families for 16 chips (the engine side, from a unit-test engine)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from supervisor_pd.runtime.snapshot import snapshot
    from tests.unit.runtime.test_npuwatch import ready_stack, report

    stack = ready_stack()
    stack.post(report(stack, health={3: "Alarm"}))
    registry = CollectorRegistry()
    registry.register(NpuCollector(lambda: snapshot(stack.engine, stack.fx.clock)))
    started = time.perf_counter()
    for _ in range(200):
        generate_latest(registry)
    return (time.perf_counter() - started) / 200


def probes(count: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    env = {"SUPERVISOR_PD_NPU_HEALTH_INTERVAL": "0.3", "SUPERVISOR_PD_NPU_HEALTH_TIMEOUT": "3"}
    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp), env=env) as run:
        root = run.state / "sim" / "800i-a2"
        connection = http.client.HTTPConnection("127.0.0.1", run.ports.api, timeout=10)
        for name, items in FAULTS.items():
            if items:
                write_host_faults(root, items)
            else:
                clear_host_faults(root)
            if "unhealthy" in name or "DOWN" in name:
                wait_until(lambda: run.api("GET", "/readyz")[0] == 503, 60, what=name)
            latencies = []
            for _ in range(count):
                started = time.perf_counter()
                connection.request("GET", "/readyz")
                connection.getresponse().read()
                latencies.append(time.perf_counter() - started)
            results[name] = latencies
            clear_host_faults(root)
            wait_until(lambda: run.api("GET", "/readyz")[0] == 200, 60, what="ready again")
        connection.close()
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--collections", type=int, default=20)
    parser.add_argument("--probes", type=int, default=300)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    cost = collector(args.collections)
    print(cost)
    latencies = probes(args.probes)
    rows = []
    for name, values in latencies.items():
        values = sorted(values)
        p99 = values[max(0, int(len(values) * 0.99) - 1)]
        rows.append(f"| {name} | {len(values)} | {ms(statistics.median(values))} | {ms(p99)} | {ms(values[-1])} |")
        print(name, ms(statistics.median(values)), ms(p99), ms(values[-1]))
    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs"
    body = "\n".join(
        [
            "## NPU and link health",
            "",
            f"Command: `python bench/npu_health_bench.py --collections {args.collections} --probes {args.probes}`",
            "",
            f"Load average (1 min) while it ran: {load} (the machine was shared with other work).",
            "",
            "### One collection, 16 chips (simulated 800I A3)",
            "",
            "| chips | tool runs | wall (median) | supervisor_pd CPU, median / max | simulated tools' CPU | "
            "/metrics NPU families |",
            "|---|---|---|---|---|---|",
            f"| {cost['chips']} | {cost['runs']} | {ms(cost['wall'])} | {ms(cost['own'])} / {ms(cost['own_max'])} "
            f"| {ms(cost['tools'])} | {ms(cost['render'])} |",
            "",
            f"{cost['runs']} runs: one `npu-smi info`, and `hccn_tool -link -g` and `-net_health -g` for each chip; "
            f"at most {CONCURRENCY} at once. supervisor_pd's CPU is this process's, every thread included (starting "
            "the tools, waiting, parsing); at the default interval (15 s) it is that much every 15 s. The tools' CPU "
            "is the simulated tools' (shell scripts printing precomputed answers), not npu-smi's or hccn_tool's. "
            "The last column: rendering the NPU series of one scrape (16 chips, one of them in fault).",
            "",
            "### /readyz under each injected fault (simulated 800I A2, a collection every 0.3 s)",
            "",
            "| fault | probes | p50 | p99 | max |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "A fault on a chip makes /readyz answer 503 (its Server is not ready). A hung tool (given up on after "
            "3 s) or one that prints garbage changes nothing for the probes: they are answered from memory, and the "
            "tools run in worker threads. The spread between rows is this shared machine's (load above); none "
            "comes near the 3 s a probe would take if it waited for a hung tool.",
        ]
    )
    update_section("npu-health", body)


if __name__ == "__main__":
    main()
