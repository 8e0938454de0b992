"""Planning the most Servers MindIE accepts in one container (16 one-NPU Servers; MindIE-Motor
DefaultGroupGenerator LIMIT_MAX) on a synthetic host, every port verified by binding it.

    python bench/plan_max.py [--runs 30]

Measures make_plan (layout, ports with real bind checks, CPU sets, rendering all 20 files) and,
separately, writing them with materialize. Target: planning well under 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from supervisor_pd.materialize import materialize
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.ports import BindChecker
from supervisor_pd.settings import Settings
from tests import factories

SERVERS = 16


def one_npu(data: dict) -> None:
    data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] = 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    chips = factories.chips(SERVERS, per_node=4)
    nodes = {node: f"{node * 96}-{node * 96 + 95}" for node in range(4)}
    facts = factories.facts(chips, nodes=nodes, cpus="0-383")
    inputs = factories.inputs(template=one_npu)
    settings = Settings(port_base=20000)
    checker = BindChecker()

    plan = make_plan(facts, inputs, settings, checker)  # warm up imports and caches
    assert len(plan.servers) == SERVERS and len(plan.files) == SERVERS + 4
    checked_ports = len(plan.ports)

    plan_ms: list[float] = []
    for _ in range(args.runs):
        start = time.perf_counter()
        make_plan(facts, inputs, settings, checker)
        plan_ms.append((time.perf_counter() - start) * 1000)

    write_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(5, args.runs // 3)):
            start = time.perf_counter()
            materialize(plan, Path(tmp) / "out")
            write_ms.append((time.perf_counter() - start) * 1000)

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return f"median {statistics.median(values):.1f} ms, min {ordered[0]:.1f} ms, p95 {p95:.1f} ms"

    lines = [
        "## Planning 16 one-NPU Servers (the most MindIE gives roles to in one container)",
        "",
        "Command: `python bench/plan_max.py`",
        "",
        f"Synthetic host: {SERVERS} chips on 4 NUMA nodes, 384 CPUs. {checked_ports} ports assigned, each "
        "verified by binding it on this machine. Target: planning well under 200 ms.",
        "",
        "| step | runs | time |",
        "|---|---|---|",
        f"| make_plan (layout, ports bound and checked, CPU sets, {len(plan.files)} files rendered) "
        f"| {len(plan_ms)} | {summary(plan_ms)} |",
        f"| materialize (staging folder, fsync, atomic swap) | {len(write_ms)} | {summary(write_ms)} |",
    ]
    text = "\n".join(lines)
    print(text)
    update_section("plan-max", text)


if __name__ == "__main__":
    main()
