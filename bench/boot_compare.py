"""This checkout's `supervisor-pd run` against another revision's, started alternately, so that the
noise of a shared machine falls on both alike.

    python bench/boot_compare.py --against REV [--runs 6]

REV is checked out into a temporary git worktree (removed afterwards) and run with this
checkout's virtual environment. Each run: a simulated 800I A3 with 16 one-chip Servers, fresh
state folder; times from launching the process to the plan logged (settings, discovery, plan,
files written) and to the first child spawned.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from bench.runtime_bench import one_world
from tests.helpers import REPO, base_env
from tests.simstack import FAST_KNOBS, Ports, free_base, make_conf, wait_until


def one(tree: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        ports = Ports(free_base())
        conf = make_conf(tmp / "conf", ports, one_world)
        env = base_env(tmp)
        env.update(FAST_KNOBS)
        env.update(
            SUPERVISOR_PD_PORT_BASE=str(ports.servers),
            SUPERVISOR_PD_API_PORT=str(ports.api),
            SUPERVISOR_PD_LOG_FORMAT="json",
            PYTHONPATH=str(tree),
        )
        log_path = tmp / "log"
        argv = [sys.executable, "-m", "supervisor_pd", "run", "--simulate", "800i-a3", "--conf-dir", str(conf)]
        with log_path.open("wb") as log:
            began = time.time()
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: "pending -> starting" in log_path.read_text(), 60, 0.01, "the first spawn")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        planned = next(r["time"] for r in records if r["process"] == "supervisor")
        spawned = next(r["time"] for r in records if "pending -> starting" in r["line"])
        return planned - began, spawned - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", required=True, help="the git revision to compare with")
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    git = shutil.which("git") or "git"
    revision = subprocess.run(
        [git, "rev-parse", "--short", args.against], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as name:
        other = Path(name) / "other"
        subprocess.run([git, "worktree", "add", "--detach", str(other), revision], cwd=REPO, check=True)
        try:
            results: dict[str, list[tuple[float, float]]] = {revision: [], "this checkout": []}
            for _ in range(args.runs):
                results[revision].append(one(other))
                results["this checkout"].append(one(REPO))
        finally:
            subprocess.run([git, "worktree", "remove", "--force", str(other)], cwd=REPO, check=False)
    rows = []
    for label, samples in results.items():
        planned = statistics.median(a for a, _ in samples)
        spawned = [b for _, b in samples]
        rows.append(
            f"| {label} | {planned:.2f} s | {statistics.median(spawned):.2f} s | "
            f"{min(spawned):.2f} - {max(spawned):.2f} s |"
        )
        print(label, rows[-1], flush=True)
    body = "\n".join(
        [
            "## Boot: this revision against an earlier one",
            "",
            f"Command: `python bench/boot_compare.py --against {revision} --runs {args.runs}`",
            "",
            "Simulated 800I A3, 16 one-chip Servers, each revision started in turn "
            f"{args.runs} times with a fresh state folder (the machine's noise falls on both alike). Times "
            "from launching `supervisor-pd run`: the plan logged (settings, discovery, plan, files written), "
            "and the first child spawned. Single runs on this shared machine vary by half a second (compare the "
            "runtime section's figures between dates): this is the comparison to read.",
            "",
            "| revision | plan logged, median | first spawn, median | first spawn, range |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    update_section("boot-compare", body)


if __name__ == "__main__":
    main()
