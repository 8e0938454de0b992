"""The suite does not need the sample configs' fixed ports to be free: with every port a default
stack listens on already taken (another supervisor-pd on this machine), the plan CLI tests' way of
running `supervisor-pd plan` (tests.helpers.private_net) still gives the expected plan.

The ports are taken inside a private network namespace of this test's own, never on the machine's
shared loopback, so a stack someone is starting meanwhile is not disturbed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, SAMPLE_CONF, private_net, private_net_unavailable, sim_env, sim_host

EXPECTED = DATA / "expected" / "800i-a2"
GOLDEN_OUTPUT = "/var/lib/supervisor-pd/conf"  # the output folder the expected files name
# What `supervisor-pd run --simulate 800i-a2` with the sample configs listens on (the supervisor
# on every interface, the rest on loopback), the Controller's node_manager_port, and the Server
# ports an A3's eight Servers would take; a few Server ports on every interface as well.
HELD = [
    ("0.0.0.0", 8080),
    *(("127.0.0.1", port) for port in range(1025, 1032)),
    *(("0.0.0.0", port) for port in range(2000, 2004)),
    *(("127.0.0.1", port) for port in range(2004, 2032)),
]
# Runs in the private namespace: take every port, check that a bind like the planner's (SO_REUSEADDR)
# now fails on it, then run each command while they are held.
HOLDER = """
import json, socket, subprocess, sys
spec = json.loads(sys.argv[1])
held, free = [], []
for host, port in spec["hold"]:
    sock = socket.socket()
    sock.bind((host, port))
    sock.listen()
    held.append(sock)
for host, port in spec["hold"]:
    for ip in {host, "0.0.0.0"}:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
                free.append([ip, port])
            except OSError:
                pass
runs = [subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False) for argv in spec["runs"]]
print(json.dumps({"free": free, "runs": [[run.returncode, run.stdout, run.stderr] for run in runs]}))
"""


def test_plan_matches_the_expected_files_while_the_default_ports_are_taken(tmp_path: Path) -> None:
    reason = private_net_unavailable()
    if reason is not None:
        pytest.skip(
            f"no private network namespace here ({reason}): tests that plan the sample configs need ports 8080, 1025... free"
        )
    plan = [sys.executable, "-m", "supervisor_pd", "plan", "--conf-dir", str(SAMPLE_CONF)]
    plan += ["--output", GOLDEN_OUTPUT, "--dry-run"]
    env = sim_env(tmp_path, sim_host(tmp_path))
    del env["MINDIE_MODEL_WEIGHT_PATH"]  # the expected plan names the sample config's weights
    holder = subprocess.run(
        private_net([sys.executable, "-c", HOLDER, json.dumps({"hold": HELD, "runs": [private_net(plan)]})]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert holder.returncode == 0, holder.stderr
    report = json.loads(holder.stdout)
    assert report["free"] == []  # the ports really are taken where the holder runs
    ((code, stdout, stderr),) = report["runs"]
    assert code == 0, stderr
    expected = (EXPECTED / "plan.txt").read_text()
    expected = expected.replace(f"{GOLDEN_OUTPUT}  (written)", f"{GOLDEN_OUTPUT}  (not written: --dry-run)")
    planned, _, preflight = stdout.partition("\npreflight: ")
    assert planned.replace(str(SAMPLE_CONF), "<samples>") == expected
    assert "  FAIL  weights         /mnt/mindie-service/ms/model " in preflight  # no such folder here
