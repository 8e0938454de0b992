"""What TLS to the Coordinator costs the proxy: the simulated stack plain and with every MindIE link
on mutual TLS (SUPERVISOR_PD_TLS=generate), each measured directly on the Coordinator's predict
port and through supervisor_pd's port.

    python bench/tls_bench.py [--seconds 5]

`added` is the supervisor_pd row minus the direct row of the same stack: the proxy's own cost,
which with TLS includes the proxy's TLS client (the direct client speaks TLS too, with the pod's
certificate). Token delays are 0, so the figures are transport and proxy cost only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_bench import compare, measure
from bench.report import update_section
from tests.superstack import SupervisorRun

FAST = {"SUPERVISOR_PD_SIM_TTFT_MS": "0", "SUPERVISOR_PD_SIM_TPOT_MS": "0", "SUPERVISOR_PD_SIM_MAX_TOKENS": "64"}


def stack_rows(tmp: Path, seconds: float, tls: bool) -> dict[str, dict[str, float]]:
    run = SupervisorRun(tmp, env={**FAST, "SUPERVISOR_PD_TLS": "generate" if tls else "off"})
    run.start()
    try:
        run.wait_ready(timeout=60)
        supervisor = run.process.pid  # type: ignore[union-attr]
        extra: tuple[str, ...] = ()
        scheme = "http"
        if tls:
            items = json.loads((run.out / "ms_coordinator.json").read_text())["tls_config"]["status_tls_items"]
            extra, scheme = ("--tls-dir", str(Path(items["ca_cert"]).parent)), "https"
        name = "TLS" if tls else "plain"
        return {
            f"direct, {name}": measure(
                f"{scheme}://127.0.0.1:{run.ports.predict}/v1/chat/completions", seconds, None, 64, extra=extra
            ),
            f"supervisor_pd, {name} to the Coordinator": measure(
                f"http://127.0.0.1:{run.ports.api}/v1/chat/completions", seconds, supervisor, 64
            ),
        }
    finally:
        run.stop(60)
        run.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sp-tls-bench-") as tmp:
        plain = stack_rows(Path(tmp) / "plain", args.seconds, tls=False)
        tls = stack_rows(Path(tmp) / "tls", args.seconds, tls=True)

    def table(rows: dict[str, dict[str, float]]) -> list[str]:
        direct = next(key for key in rows if key.startswith("direct"))
        return compare({"direct": rows[direct], **{k: v for k, v in rows.items() if k != direct}})

    command = "python bench/tls_bench.py" + (f" --seconds {args.seconds:g}" if args.seconds != 5.0 else "")
    body = "\n".join(
        [
            "## The proxy with TLS to the Coordinator",
            "",
            f"Command: `{command}`",
            "",
            "The full simulated stack (4 Servers, token delays 0), plain and with every MindIE link on mutual "
            "TLS 1.3; chat completions, non-streaming with 2 tokens and streams of 64 chunks. In each table "
            "`direct` is the Coordinator's predict port (with TLS: a client presenting the pod's certificate) "
            "and `added` is supervisor_pd's port minus it. The client talks plain HTTP to supervisor_pd's port "
            "in both. CPU per chunk is the whole supervisor's. With TLS the absolute figures are the simulated "
            "stack's own (its Coordinator and Servers are Python, doing TLS 1.3 with RSA-3072 certificates on the "
            "same 2 CPUs); the proxy's share is the `added` columns.",
            "",
            "Plain HTTP to the Coordinator:",
            "",
            *table(plain),
            "",
            "Mutual TLS to the Coordinator:",
            "",
            *table(tls),
        ]
    )
    print(body)
    update_section("tls-proxy", body)


if __name__ == "__main__":
    main()
