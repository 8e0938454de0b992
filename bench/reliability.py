"""Run the reliability matrix and the bad-input corpus, and write docs/RELIABILITY.md from them.

    python bench/reliability.py [--scale full|ci]

Runs `pytest tests/e2e/test_fault_matrix.py` and the bad-input corpus with SUPERVISOR_PD_RELIABILITY
set to the scale (full: 32 streams; ci: the 8 streams CI runs) and SUPERVISOR_PD_REPORT_DIR set, so
each test records the row it asserted. The document is written only when every test passed:
every row in it is a row that held.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "RELIABILITY.md"
SUITES = [
    "tests/e2e/test_fault_matrix.py",
    "tests/e2e/test_fault_matrix_tls.py",
    "tests/integration/test_bad_inputs.py",
    "tests/e2e/test_bad_http_inputs.py",
]


def rows(folder: Path, table: str) -> list[dict[str, Any]]:
    path = folder / f"{table}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(folder: Path, scale: str, seconds: float) -> str:
    faults = rows(folder, "faults")
    bad = rows(folder, "bad_inputs")
    streams = 32 if scale == "full" else 8
    lines = [
        "# Reliability",
        "",
        "What the service does when a process dies, hangs or slows, when the host misbehaves, and when "
        "it is given bad input. Every figure below was produced by the test suite itself: each test "
        "asserts its row, then records it.",
        "",
        f"Command: `python bench/reliability.py --scale {scale}` (runs `{' '.join(SUITES)}`; "
        f"{seconds:.0f} s here). CI runs the same tests with the reduced load (8 streams); this run: "
        f"{streams} concurrent streams.",
        "",
        "## Faults under load",
        "",
        "The whole stack (supervisor, simulated Controller, Coordinator and 8 one-NPU Servers, 4 prefill "
        "and 4 decode) serves a steady load of streamed chat completions (32 tokens, 20 ms per token) "
        "through supervisor_pd's port while each fault is injected (`tests/streamload.py` records "
        "every request). **failed**: the client got an error response (an HTTP error status, or an error "
        "event that ends the stream), or found the port closed. **lost**: neither completed nor an "
        "error response. **hung**: still open at the deadline. **recover**: from the fault to every "
        "process ready again (for a start-up fault: to the service ready)."
        " Each stream sends its next request as soon as one ends, so requests refused while the service "
        "was not ready (503 with `Retry-After`) count as failed too: a longer outage shows as many failed "
        "requests. MindIE's own timers run 20 times faster here (`SUPERVISOR_PD_SIM_TIME_SCALE=0.05`: the "
        "Servers' 10 s link query and 5 s health checks, the Coordinator's 2-minute quarantine after a lost "
        "decode link, the Controller's waits), and so does supervisor_pd's wait before it ends that quarantine "
        "(`SUPERVISOR_PD_COORDINATOR_QUARANTINE_SECONDS=0.5` instead of 10), and a killed Server's ports are "
        "bindable again at once (on an 800I its restart waits up to about a minute for them: docs/running.md, "
        "Restarts): **recover** is this simulation's, not an 800I's.",
        "",
        "| fault | what the service did | streams | requests | completed | failed | lost | hung | recover |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in faults:
        recover = row.get("recover_s")
        lines.append(
            "| "
            + " | ".join(
                [
                    cell(row["fault"]),
                    cell(row["service"]),
                    cell(row.get("streams") or None),
                    cell(row.get("requests")),
                    cell(row.get("completed")),
                    cell(row.get("failed")),
                    cell(row.get("lost")),
                    cell(row.get("hung")),
                    "-" if recover is None else f"{recover:.2f} s",
                ]
            )
            + " |"
        )
    lines += [
        "",
        "A `-` means the row has no load: a start-up fault that ends in exit code 2 before anything "
        "starts, or the supervisor's own SIGKILL (the process that would answer the streams is the one "
        "killed).",
        "",
        "## Bad inputs",
        "",
        f"{len(bad)} cases (`tests/corpus/bad_inputs.py`, run by `tests/integration/test_bad_inputs.py` and "
        "`tests/e2e/test_bad_http_inputs.py`). Each gets a clear error: exit code 2 with one line naming "
        "the file, field, flag or variable (nothing written), or a 4xx with a JSON body (the supervisor "
        "keeps serving; a request so malformed that the HTTP parser refuses it before the application "
        "sees it gets aiohttp's plain-text 400). None gives a traceback, a 500, a crash or a partial file.",
        "",
        "| category | case | outcome |",
        "|---|---|---|",
    ]
    for row in bad:
        lines.append(f"| {cell(row.get('category'))} | {cell(row.get('case'))} | {cell(row.get('outcome'))} |")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"
    lines += ["", f"_Measured {stamp} on {machine}, {platform.machine()}._", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["full", "ci"], default="full")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sp-reliability-"))
    env = {**os.environ, "SUPERVISOR_PD_REPORT_DIR": str(folder), "SUPERVISOR_PD_RELIABILITY": args.scale}
    began = datetime.now(UTC)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES], cwd=REPO, env=env)
    seconds = (datetime.now(UTC) - began).total_seconds()
    if done.returncode != 0:
        raise SystemExit(f"the suite failed (exit {done.returncode}): docs/RELIABILITY.md left as it was")
    DOC.write_text(render(folder, args.scale, seconds), encoding="utf-8")
    print(f"wrote {DOC.relative_to(REPO)} from {folder}")


if __name__ == "__main__":
    main()
