"""Drain figures: SIGTERM to exit, stage by stage, with MindIE's own timers unscaled.

    python bench/drain_bench.py [--runs 3] [--streams 16] [--tokens 100]

`supervisor-pd run --simulate 800i-a2` (4 Servers, model load 0), ready, then SIGTERM: once idle,
and once with `--streams` streamed chat completions in flight through supervisor_pd's port
(`--tokens` tokens at 20 ms each). The stages come from the supervisor's own log lines:

    settle          SIGTERM to "asking 4 process(es) to stop (/stopService)": the requests in
                    flight finish and the Servers report none running or waiting
    stopService     to "stopping controller": every Server answered /stopService (200, no body:
                    it only stops serving, as MindIE's does)
    Controller, Coordinator
                    SIGTERM to each group's exit
    Servers         SIGTERM to the Servers (sent by the drain: /stopService does not end them) to
                    the supervisor's exit; the Server's own shutdown path (health off, 5 s linger,
                    SIGTERM to its group, workers waited for) is most of it
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from bench.runtime_bench import supervisor_run
from tests.simstack import http, wait_until

STAGES = ("settle", "stopService", "Controller", "Coordinator", "Servers", "total")


def stream(port: int, tokens: int) -> int:
    body = {
        "model": "llama3-8b",
        "messages": [{"role": "user", "content": "drain"}],
        "max_tokens": tokens,
        "stream": True,
    }
    code, _ = http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", body, timeout=120)
    return code


def streams_in_flight(port: int) -> float:
    text = http("GET", f"http://127.0.0.1:{port}/metrics")[1].decode()
    line = next((line for line in text.splitlines() if line.startswith("supervisor_pd_streams_in_flight ")), "x 0")
    return float(line.split()[1])


def one_drain(streams: int, tokens: int) -> tuple[dict[str, float], list[int]]:
    extra = {"SUPERVISOR_PD_SIM_TPOT_MS": "20", "SUPERVISOR_PD_SIM_TTFT_MS": "50"}
    with supervisor_run("800i-a2", extra=extra) as (tmp, ports, process, _launched):
        log = tmp / "supervisor.log"

        def records() -> list[dict]:
            return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]

        wait_until(lambda: any("service: starting -> ready" in r["line"] for r in records()), timeout=90, what="ready")
        codes: list[int] = []
        with concurrent.futures.ThreadPoolExecutor(max(1, streams)) as pool:
            futures = [pool.submit(stream, ports.api, tokens) for _ in range(streams)]
            if streams:
                wait_until(
                    lambda: streams_in_flight(ports.api) >= streams, timeout=30, interval=0.01, what="streams in flight"
                )
            began = time.time()
            process.send_signal(signal.SIGTERM)
            process.wait(120)
            ended = time.time()
            codes = [future.result() for future in futures]
        lines = [r for r in records() if r["process"] == "supervisor"]

        def at(prefix: str) -> float:
            return next(r["time"] for r in lines if r["line"].startswith(prefix) and r["time"] >= began)

        asked, controller = at("asking 4 process(es) to stop"), at("stopping controller")
        coordinator, servers = at("stopping coordinator"), at("stopping server-1")
        figures = {
            "settle": asked - began,
            "stopService": controller - asked,
            "Controller": coordinator - controller,
            "Coordinator": servers - coordinator,
            "Servers": ended - servers,
            "total": ended - began,
        }
        return figures, codes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    table = [
        "| load | " + " | ".join(STAGES) + " | streams completed |",
        "|---|" + "---|" * (len(STAGES) + 1),
    ]
    for streams in (0, args.streams):
        runs = [one_drain(streams, args.tokens) for _ in range(args.runs)]
        medians = {stage: statistics.median(r[0][stage] for r in runs) for stage in STAGES}
        done = sum(code == 200 for _, codes in runs for code in codes)
        load = "idle" if not streams else f"{streams} streams in flight ({args.tokens} tokens x 20 ms)"
        completed = "-" if not streams else f"{done} / {streams * args.runs}"
        table.append(f"| {load} | " + " | ".join(f"{medians[s]:.2f} s" for s in STAGES) + f" | {completed} |")
        print(table[-1], flush=True)
    body = "\n".join(
        [
            "## Drain: SIGTERM to exit",
            "",
            f"Command: `python bench/drain_bench.py --runs {args.runs} --streams {args.streams} "
            f"--tokens {args.tokens}` (simulated 800I A2, 4 Servers, MindIE's timers unscaled, "
            "`SUPERVISOR_PD_GRACE_SECONDS` default). Median of the runs, stage by stage from the "
            "supervisor's log: **settle** (requests in flight finish, the Servers report none), "
            "**stopService** (every Server answered it: 200 with no body; it stops serving and stays "
            "up, as MindIE's does), then SIGTERM group by group; **Servers** is mostly the Server's "
            "own shutdown path (health off, a 5 s linger, its group stopped).",
            "",
            *table,
        ]
    )
    update_section("drain", body)


if __name__ == "__main__":
    main()
