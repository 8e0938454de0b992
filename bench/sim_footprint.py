"""How light the simulated MindIE processes are.

    python bench/sim_footprint.py [--servers 16] [--idle-seconds 10]

Plans and starts N simulated Servers (one chip each) plus the Controller and Coordinator by
hand, waits until the Coordinator is ready, then measures each process's resident memory and
the CPU all of them use while idle (MindIE's own timers unscaled: the Controller polls every
Server each second). Targets: one Server under 40 MB RSS, near-zero idle CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from supervisor_pd.simulator.profiles import A2, SimChip
from tests.simstack import Stack

TICKS = os.sysconf("SC_CLK_TCK")


def synthetic_host(chips: int):  # type: ignore[no-untyped-def]
    per_node = max(1, chips // 4)
    return replace(
        A2,
        name=f"synthetic-{chips}",
        chips=tuple(
            SimChip(
                npu_id=i,
                chip_id=0,
                logic_id=i,
                phy_id=i,
                bdf=f"0001:{i:02x}:00.0",
                numa_node=i // per_node,
                device_ip=f"29.1.{i // 250}.{i % 250 + 1}",
            )
            for i in range(chips)
        ),
        numa_cpus={node: f"{node * 96}-{node * 96 + 95}" for node in range(4)},
        container_cpus="0-383",
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def one_world(data: dict) -> None:
    data["config.json"]["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] = 1


def measure(servers: int, idle: float) -> dict[str, float]:
    knobs = {
        "SUPERVISOR_PD_SIM_TIME_SCALE": "1",
        "SUPERVISOR_PD_SIM_MODEL_LOAD_SECONDS": "0",
        "SUPERVISOR_PD_SIM_LINK_SECONDS": "0.2",
        "SUPERVISOR_PD_SIM_STARTUP_SECONDS": "0.1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            Path(tmp),
            profile=synthetic_host(servers),
            knobs=knobs,
            change=one_world,
            plan_env={"SUPERVISOR_PD_CPU_BINDING": "off"},
        )
        try:
            began = time.monotonic()
            stack.start_all()
            stack.wait_ready(timeout=300)
            ready = time.monotonic() - began
            time.sleep(2)  # let start-up work settle before measuring idle
            server_pids = [p.pid for n, p in stack.processes.items() if n.startswith("server-")]
            pids = [p.pid for p in stack.processes.values()]
            before = {pid: cpu_ticks(pid) for pid in pids}
            time.sleep(idle)
            used = sum(cpu_ticks(pid) - before[pid] for pid in pids) / TICKS
            server_used = sum(cpu_ticks(pid) - before[pid] for pid in server_pids) / TICKS
            server_rss = [rss_kib(pid) / 1024 for pid in server_pids]
            return {
                "servers": servers,
                "ready_s": ready,
                "server_rss_median": statistics.median(server_rss),
                "server_rss_max": max(server_rss),
                "controller_rss": rss_kib(stack.processes["controller"].pid) / 1024,
                "coordinator_rss": rss_kib(stack.processes["coordinator"].pid) / 1024,
                "idle_cpu_pct": 100 * used / idle,
                "idle_cpu_per_server_pct": 100 * server_used / idle / servers,
            }
        finally:
            stack.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, nargs="*", default=[8, 16])
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    rows = [measure(n, args.idle_seconds) for n in args.servers]
    lines = [
        "## Simulator footprint",
        "",
        "Command: `python bench/sim_footprint.py` (8 and 16 Servers, 10 s idle window; 16 is the most MindIE gives roles to in one container)",
        "",
        "N simulated Servers of one chip each, plus the Controller and Coordinator, started from a plan as a "
        "user would by hand. MindIE's timers unscaled (the Controller polls every Server each second). "
        "Targets: one Server under 40 MB RSS, near-zero idle CPU.",
        "",
        "| Servers | start to ready | Server RSS median / max | Controller RSS | Coordinator RSS | idle CPU, all processes | idle CPU per Server |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['servers']} | {r['ready_s']:.1f} s | {r['server_rss_median']:.1f} / {r['server_rss_max']:.1f} MB | "
            f"{r['controller_rss']:.1f} MB | {r['coordinator_rss']:.1f} MB | {r['idle_cpu_pct']:.1f} % of a core | "
            f"{r['idle_cpu_per_server_pct']:.2f} % |"
        )
    lines.append("")
    lines.append(
        "Each Server also has one worker process (`sleep`, about 2 MB) in its process group, as the real "
        "daemon's workers share its group."
    )
    text = "\n".join(lines)
    print(text)
    update_section("sim-footprint", text)


if __name__ == "__main__":
    main()
