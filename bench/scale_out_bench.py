"""Two-pod figures: simulated supervisor_pd pods behind an endpoint picker that decides as the Gateway
API Inference Extension's default one does, under load, through Server kills and drains.

    python bench/scale_out_bench.py [--requests 2000] [--streams 32] [--interval 0.25]
                                    [--kills 6] [--drains 2] [--gap 100] [--print-only]

The scenario of tests/e2e/test_scale_out.py (tests/scaleout.py, tests/picker.py) with more of
everything: two `supervisor-pd run --simulate 800i-a2` stacks (4 Servers each, the tests' fast
simulator knobs, 10 ms a token), `--streams` streamed chat completions kept open through the
picker, `--kills` SIGKILLs of a prefill Server (alternating pods; each pod comes back) and
`--drains` drains (SIGTERM to a pod's supervisor; a new pod is started in its place, as a
Deployment would), `--gap` requests apart, until `--requests` requests have ended. The figures
go to BENCHMARKS.md ("Scale-out: two pods behind an endpoint picker") unless `--print-only`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from tests.scaleout import STACK_ENV, Outcome, Scenario
from tests.scaleout_figures import losses, report, shifts, tracking
from tests.superstack import SupervisorRun


def steps(kills: int, drains: int) -> list[tuple[str, int]]:
    """Kills alternating between the pods, a drain after each share of them (the other pod first)."""
    order: list[tuple[str, int]] = [("kill", i % 2) for i in range(kills)]
    for n in range(drains, 0, -1):
        order.insert(n * kills // drains, ("drain", n % 2))
    return order


def run(args: argparse.Namespace, folder: Path) -> Outcome:
    made: list[SupervisorRun] = []

    def spawn() -> SupervisorRun:
        place = folder / f"pod{len(made)}"
        place.mkdir()
        stack = SupervisorRun(place, env=STACK_ENV)
        made.append(stack)
        stack.start()
        return stack

    try:
        first = [spawn(), spawn()]
        for stack in first:
            stack.wait_ready(timeout=60)
        scenario = Scenario(
            first,
            steps(args.kills, args.drains),
            interval=args.interval,
            streams=args.streams,
            gap=args.gap,
            requests=args.requests,
            spawn=spawn,
            timeout=60.0,
        )
        return asyncio.run(scenario.run())
    except BaseException:
        for stack in made:
            print(f"--- {stack.tmp}:\n{stack.log()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for stack in made:
            stack.cleanup()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def render(args: argparse.Namespace, outcome: Outcome, figures: dict[str, Any], load: tuple[str, str]) -> str:
    found = shifts(outcome)
    lost = losses(outcome)
    track = tracking(outcome)
    rows = []
    for kind, label in (("kill", "SIGKILL of a prefill Server"), ("drain", "drain (SIGTERM to the supervisor)")):
        of_kind = [s for s in found if s.kind == kind]
        if not of_kind:
            continue
        shift = [s.shift for s in of_kind]
        notice = [s.noticed - s.unready for s in of_kind]
        rows.append(
            f"| {label} | {len(of_kind)} | {', '.join(f'{x * 1000:.0f}' for x in shift)} ms | "
            f"{ms(statistics.median(shift))} | {ms(max(shift))} | {ms(statistics.median(notice))} | "
            f"{ms(max(notice))} | {', '.join(str(s.chosen_before) for s in of_kind)} | "
            f"{sum(s.chosen_after for s in of_kind)} | {sum(s.refused_after for s in of_kind)} |"
        )
    command = (
        f"python bench/scale_out_bench.py --requests {args.requests} --streams {args.streams} "
        f"--interval {args.interval} --kills {args.kills} --drains {args.drains} --gap {args.gap}"
    )
    return "\n".join(
        [
            "## Scale-out: two pods behind an endpoint picker",
            "",
            f"Command: `{command}` ({figures['seconds']:.0f} s; load average before {load[0]}, after {load[1]}). "
            "Two simulated 800I A2 pods (`supervisor-pd run --simulate 800i-a2`, 4 Servers each, 10 ms a token) "
            "behind `tests/picker.py`, which chooses as the Gateway API Inference Extension v1.5.0's default "
            "endpoint picker does (membership by `/readyz`; queue-scorer and kv-cache-utilization-scorer, "
            "weight 2 each, max score) from `supervisor_pd_pod_requests_waiting` and "
            f"`supervisor_pd_pod_kv_cache_usage_ratio`, scraped every {args.interval} s. "
            f"{args.streams} streamed chat completions are kept open; a prefill Server is SIGKILLed "
            f"{args.kills} times (alternating pods) and a pod is drained {args.drains} times (a new pod "
            'started in its place). docs/scale-out.md, "Proof on one machine", defines each figure.',
            "",
            "| requests | completed | lost at a kill | lost otherwise | failed | refused attempts (sent again) |",
            "|---|---|---|---|---|---|",
            f"| {figures['requests']} | {figures['completed']} | {lost.at_kill} (of {lost.open_at_kill} open on the "
            f"killed pods) | {lost.other} | {figures['failed']} | {figures['refused']} |",
            "",
            "**Lost at a kill**: requests the pod had accepted before the kill that went through the killed "
            "Server; MindIE's Coordinator ends each with an error event (a routing choice cannot save them). "
            + " ".join(
                f"Drained {d['pod']}: exit code {d['exit_code']}, {d['seconds']:.2f} s after SIGTERM; "
                f"{d['open_accepted']} requests it had accepted were open then, {d['open_completed']} of them "
                "completed."
                for d in figures["drains"]
            ),
            "",
            "| pod turns unready by | times | shift, each | shift p50 | shift max | picker notices p50 | "
            "notices max | chosen in the interval before, each | chosen after it fell | of those refused |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "**Shift**: from the supervisor's `service: ready -> degraded|draining` line (the moment `/readyz` "
            "falls) to the picker's last choice of that pod; 0 if it was not chosen after, as when the picker "
            "was sending every request elsewhere already (between two scrapes every choice goes to the "
            "best-scored pod: see *chosen in the interval before*). **Notices**: to the answer of the picker's "
            "first `/readyz` read that found it unready, the bound on the shift. Reads of `/readyz`: "
            f"{figures['probes']}, slowest {ms(figures['probe_seconds_max'])}, at most "
            f"{ms(figures['probe_late_max'])} more than one interval after the previous one; scrapes of `/metrics`: {figures['scrapes']}, "
            f"p50 {ms(figures['scrape_seconds_p50'])}, slowest {ms(figures['scrape_seconds_max'])}.",
            "",
            f"Gauges against the requests open on each pod at {track.samples} scrapes: Pearson r "
            f"{track.load_vs_requests:.2f} for waiting + running, {track.load_vs_kv:.2f} for KV-cache use; in "
            f"{track.agree_requests} of {track.pairs} pairs of scrapes (both pods, same interval) where one pod "
            f"had 2 or more requests open beyond the other, its waiting + running was higher ({track.agree_kv} "
            f"for KV-cache use). Busiest scrape: {json.dumps(track.busiest)}. Scrapes whose /readyz was 200 but "
            f"whose gauges said not ready (a pod falling or coming back between the two reads), left out: "
            f"{len(track.full_while_ready)}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--drains", type=int, default=2)
    parser.add_argument("--gap", type=int, default=100)
    parser.add_argument("--print-only", action="store_true")
    args = parser.parse_args()
    for flag, value, low in (("--requests", args.requests, 1), ("--streams", args.streams, 1), ("--gap", args.gap, 1)):
        if value < low:
            parser.error(f"{flag}: {value} is not allowed; give {low} or more")
    if not 0.05 <= args.interval <= 5:
        parser.error(f"--interval: {args.interval} is not allowed; give 0.05 to 5 seconds")
    if args.kills < 0 or args.drains < 0:
        parser.error("--kills / --drains: give 0 or more")
    before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="scale-out-") as folder:
        outcome = run(args, Path(folder))
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    figures = report(outcome)
    print(json.dumps(figures, indent=1))
    if not args.print_only:
        update_section("scale-out", render(args, outcome, figures, (before, after)))


if __name__ == "__main__":
    main()
