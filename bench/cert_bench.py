"""What TLS costs at start: the pod's certificates for a 16-Server plan, made and put in place.

    python bench/cert_bench.py [--runs 30]

One leaf serves every process (certs/pki.py), so the cost does not grow with the Servers; what it
costs is the leaf's RSA-3072 key (the private CA's key is EC P-384: certs/pki.py says why) and the
0400 files swapped into the Server's home. Measured three ways: the set made cold (nothing started early); what it adds to a
whole `plan` (prepare + write, in this process) on the simulated 800I A3 planned as 16 one-NPU
Servers, TLS generate against TLS off, where the keys are made while discovery runs; and a
renewal (one key, the CA kept). Target: under 300 ms added to start.
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
from supervisor_pd.certfiles import CertKeeper
from supervisor_pd.certs.inputs import TlsInputs
from supervisor_pd.pipeline import prepare, write
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.ports import BindChecker
from supervisor_pd.settings import Settings, load_settings
from tests import factories

SERVERS = 16


def one_npu(data: dict) -> None:
    data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] = 1


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(values):.0f} ms, p95 {p95:.0f} ms, max {ordered[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    chips = factories.chips(SERVERS, per_node=4)
    facts = factories.facts(chips, nodes={node: f"{node * 96}-{node * 96 + 95}" for node in range(4)}, cpus="0-383")
    first_ms: list[float] = []
    renew_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        tls_inputs = TlsInputs(Path(tmp), "bench", "current", "", Path(tmp) / "no-mount", None, None, "pod-0")
        plan = make_plan(
            facts,
            factories.inputs(template=one_npu),
            Settings(port_base=20000, tls="generate"),
            BindChecker(),
            tls_inputs,
        )
        assert len(plan.servers) == SERVERS and plan.tls.mode == "generate"
        for _ in range(args.runs):
            keeper = CertKeeper(plan.tls, tls_inputs)
            start = time.perf_counter()
            keeper.first()
            first_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            keeper.renew()
            renew_ms.append((time.perf_counter() - start) * 1000)

    # The whole plan command, in this process, on a simulated A3 with one NPU per Server.
    whole: dict[str, list[float]] = {"off": [], "generate": []}
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "conf"
        conf.mkdir()
        for name in ("config.json", "ms_controller.json", "ms_coordinator.json"):
            data = factories.sample(name)
            if name == "config.json":
                one_npu(data)
            (conf / name).write_bytes(__import__("orjson").dumps(data))
        for run in range(max(5, args.runs // 3) * 2):
            mode = "generate" if run % 2 else "off"
            settings = load_settings(
                simulate="800i-a3", conf_dir=conf, state_dir=Path(tmp) / "state", tls=mode, port_base=21000
            )
            start = time.perf_counter()
            prepared = prepare(settings, "plan", lock=True)
            try:
                write(prepared)
            finally:
                prepared.release()
            whole[mode].append((time.perf_counter() - start) * 1000)
            assert len(prepared.plan.servers) == SERVERS
    added = statistics.median(whole["generate"]) - statistics.median(whole["off"])

    lines = [
        "## Certificates at start (TLS generate, 16 Servers)",
        "",
        "Command: `python bench/cert_bench.py`",
        "",
        "One pod certificate serves all 18 processes and supervisor_pd's own client, so the cost does not "
        "depend on the number of Servers. RSA-3072 key generation is nearly all of it and varies a lot from "
        "run to run (finding primes is a random search). Target: the first set under 300 ms.",
        "",
        "| step | runs | time |",
        "|---|---|---|",
        f"| first set, cold: a private CA (EC P-384) and the pod's leaf (RSA-3072), five 0400 files "
        f"swapped into the Server's home | {len(first_ms)} | {summary(first_ms)} |",
        f"| renewal: a new leaf from the same CA (one key), swapped in | {len(renew_ms)} | {summary(renew_ms)} |",
        f"| whole plan, simulated 800I A3 as {SERVERS} Servers, TLS off (discover, plan, write) "
        f"| {len(whole['off'])} | {summary(whole['off'])} |",
        f"| the same with TLS generate (the leaf's key made while discovery runs) | {len(whole['generate'])} "
        f"| {summary(whole['generate'])} |",
        "",
        f"Added to the start by TLS generate (difference of the medians): **{added:.0f} ms**.",
    ]
    text = "\n".join(lines)
    print(text)
    update_section("certificates", text)


if __name__ == "__main__":
    main()
