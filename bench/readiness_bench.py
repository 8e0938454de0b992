"""How fast /readyz follows the truth: a process's exit to /readyz 503, and every readiness
endpoint answering 200 again to /readyz 200.

    python bench/readiness_bench.py [--kills 5]

A simulated 800I A2 (4 Servers), default health settings (interval 5 s; 0.5 s while not ready;
the Coordinator alone every 50 ms when it is the last step). One thread polls supervisor_pd's
/readyz on a keep-alive connection as fast as it answers; another polls every serving process's
own readiness endpoint (each Server's /v2/health/ready, the Coordinator's /v1/readiness) in turn,
also on keep-alive connections. For each kill (SIGKILL to the victims' process groups):

- exit -> /readyz 503: from the kill to the first /readyz answer that is not 200;
- all ready -> /readyz 200: from the first moment every endpoint answered 200 again (the
  earliest the supervisor could know; measured with the direct poller's cycle, about 5 ms) to
  the first /readyz 200 after it.

Targets: under 50 ms and under 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from bench.runtime_bench import supervisor_run
from tests.simstack import http as get
from tests.simstack import wait_until

CASES = {
    "one decode Server": ("server-4",),
    "both prefill Servers": ("server-1", "server-2"),
    "the Coordinator": ("coordinator",),
}


class Poller(threading.Thread):
    """GET each (port, path) in turn on keep-alive connections; records (time, port, status)."""

    def __init__(self, targets: list[tuple[int, str]]) -> None:
        super().__init__(daemon=True)
        self.targets = targets
        self.seen: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        connections: dict[int, http.client.HTTPConnection] = {}
        while not self.stop.is_set():
            for port, path in self.targets:
                try:
                    connection = connections.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    connections[port] = connection
                    connection.request("GET", path)
                    reply = connection.getresponse()
                    reply.read()
                    status = reply.status
                except (OSError, http.client.HTTPException):
                    connections.pop(port, None)
                    status = 0
                self.seen.append((time.monotonic(), port, status))
            time.sleep(0.001)


def all_ready_since(seen: list[tuple[float, int, int]], ports: set[int], after: float) -> float | None:
    """The first time after `after` when the latest answer of every port, each asked after `after`
    (the victims were dead by then), was 200."""
    latest: dict[int, int] = {}
    for moment, port, status in seen:
        if moment <= after:
            continue
        latest[port] = status
        if len(latest) == len(ports) and all(v == 200 for v in latest.values()):
            return moment
    return None


def measure(kills: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    # Many kills in a row: a short backoff and a large budget, so each kill is one restart.
    extra = {
        "SUPERVISOR_PD_HEALTH_INTERVAL": "5",
        "SUPERVISOR_PD_RESTART_BACKOFF": "0.2",
        "SUPERVISOR_PD_RESTART_BACKOFF_MAX": "0.2",
        "SUPERVISOR_PD_RESTART_BUDGET": "1000",
    }
    with supervisor_run("800i-a2", extra=extra) as (tmp, ports, _process, _):
        wait_until(lambda: get("GET", f"http://127.0.0.1:{ports.api}/readyz")[0] == 200, 120, 0.05, "ready")
        out = tmp / "state" / "conf"
        managements = [
            json.loads((out / f"config{i}.json").read_text())["ServerConfig"]["managementPort"] for i in range(1, 5)
        ]
        direct = Poller([(port, "/v2/health/ready") for port in managements] + [(ports.status, "/v1/readiness")])
        ours = Poller([(ports.api, "/readyz")])
        direct.start()
        ours.start()
        try:
            for name, victims in CASES.items():
                for _ in range(kills):
                    status = json.loads(get("GET", f"http://127.0.0.1:{ports.api}/v1/status")[1])
                    pids = [p["pid"] for p in status["processes"] if p["name"] in victims]
                    killed = time.monotonic()
                    for pid in pids:
                        os.killpg(pid, signal.SIGKILL)
                    fell = wait_until(
                        lambda k=killed: next((t for t, _, s in ours.seen if t > k and s != 200), None), 10, 0.005
                    )
                    back_all = wait_until(
                        lambda f=fell: all_ready_since(direct.seen, set(managements) | {ports.status}, f), 60, 0.01
                    )
                    back = wait_until(
                        lambda b=back_all: next((t for t, _, s in ours.seen if t >= b and s == 200), None), 10, 0.005
                    )
                    results[name].append((fell - killed, back - back_all))
                    # The Controller checks a re-admitted Server every 5 s until it is role-ready, and
                    # does not notice a second exit meanwhile: let it finish before the next kill.
                    time.sleep(6.0)
        finally:
            direct.stop.set()
            ours.stop.set()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    results = measure(args.kills)
    rows = []
    for name, samples in results.items():
        fell = [a * 1000 for a, _ in samples]
        back = [b * 1000 for _, b in samples]
        rows.append(
            f"| {name} | {len(samples)} | {statistics.median(fell):.1f} / {max(fell):.1f} ms "
            f"| {statistics.median(back):.1f} / {max(back):.1f} ms |"
        )
        print(name, [round(x, 1) for x in fell], [round(x, 1) for x in back])
    body = "\n".join(
        [
            "## Readiness: how fast /readyz follows the truth",
            "",
            f"Command: `python bench/readiness_bench.py --kills {args.kills}`",
            "",
            "Simulated 800I A2 (4 Servers), MindIE's timers unscaled, default health interval (5 s), restart "
            "backoff 0.2 s. /readyz polled on a keep-alive "
            "connection as fast as it answers; every serving process's own readiness endpoint polled in turn "
            "by another thread (one cycle about 5 ms). `exit -> 503`: from the SIGKILL to the first /readyz "
            "answer that is not 200. `all ready -> 200`: from the first moment every Server's "
            "/v2/health/ready and the Coordinator's /v1/readiness answered 200 again to the first /readyz 200 "
            "after it. Both include the supervisor's own probe cycle (after a fault, a Server that is up but not "
            "ready, and then the Coordinator, are asked every 50 ms; a starting process every 50 ms) and the "
            "pollers' own (two threads of one Python process). Targets: under 50 ms and under 100 ms.",
            "",
            "| killed | kills | exit -> /readyz 503, median / max | all ready -> /readyz 200, median / max |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    update_section("readiness", body)


if __name__ == "__main__":
    main()
