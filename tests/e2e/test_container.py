"""The demo image, built and run as a user would: docker run, ready, a streamed answer, docker stop.

Needs a Docker engine; where none runs (or the base image cannot be built) the test is skipped
with the reason. `.ci/run` installs and starts one where it can.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import openai
import pytest

from tests import container
from tests.simstack import http, wait_until
from tests.superstack import check_stop_order

TAG = "supervisor-pd:e2e"
STOP_TIMEOUT = 30


@pytest.fixture(scope="module")
def image() -> str:
    try:
        container.require_engine()
        container.ensure_base_image()
        container.build_wheelhouse()
    except container.Unavailable as exc:
        pytest.skip(f"container test skipped: {exc}")
    return container.build_image(TAG).image


@pytest.fixture
def name(image: str) -> Iterator[str]:
    name = f"sp-e2e-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
    try:
        yield name
    finally:
        container.docker("rm", "-f", name, check=False)


def test_demo_image_serves_a_stream_and_stops_cleanly(image: str, name: str) -> None:
    # No arguments: the image alone starts the whole stack on the simulated 800I A2.
    container.docker("run", "-d", "--name", name, "-p", "127.0.0.1::8080", image)
    port = container.published_port(name, 8080)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        state = container.docker("inspect", name, "--format", "{{.State.Running}}").stdout.strip()
        if state != "true":
            logs = container.docker("logs", name, check=False)
            raise AssertionError(f"container exited before ready:\n{logs.stdout}{logs.stderr}")
        return http("GET", f"{base}/readyz", timeout=2)[0] == 200

    wait_until(ready, 120, what="/readyz 200 through the published port")

    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=30)
    chunks = list(
        client.chat.completions.create(
            model="llama3-8b", messages=[{"role": "user", "content": "hello"}], max_tokens=8, stream=True
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(chunks) >= 8 and text.strip()
    assert chunks[-1].choices[0].finish_reason == "length"

    # Least privilege: not root, and the operator CLI reaches the control socket from `docker exec`.
    assert container.docker("exec", name, "id", "-u").stdout.strip() == "1000"
    status = json.loads(container.docker("exec", name, "supervisor-pd", "status", "--json").stdout)
    assert status["phase"] == "ready"
    assert {p["name"] for p in status["processes"]} >= {"controller", "coordinator", "server-1"}
    # PID 1 is supervisor-pd itself (entrypoint.sh execs it), so `docker stop` reaches it.
    cmdline = container.docker("exec", name, "cat", "/proc/1/cmdline").stdout
    assert "supervisor-pd" in cmdline.replace("\0", " ")

    began = time.monotonic()
    container.docker("stop", "-t", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 30)
    took = time.monotonic() - began
    exit_code = container.docker("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    logs = container.docker("logs", name)
    lines = [line.removeprefix("supervisor | ") for line in (logs.stdout + logs.stderr).splitlines()]
    assert exit_code == "0", "\n".join(lines[-40:])
    assert took < STOP_TIMEOUT, f"docker stop took {took:.1f} s: the grace period ran out"
    assert any(line.startswith("service: ready -> draining: SIGTERM received") for line in lines), lines[-40:]
    check_stop_order(lines)
    assert lines[-1].startswith("service: draining -> stopped"), lines[-5:]


def test_production_image_looks_for_the_real_host_and_never_simulates(image: str) -> None:
    # `image` built the shared layers; the production target adds no simulation setting.
    production = container.build_image(f"{TAG}-production", target="production").image
    conf = str(container.REPO / "configs" / "mindie")
    done = container.docker(
        "run",
        "--rm",
        "-v",
        f"{conf}:/mnt/config-files:ro",
        "-e",
        "CONFIG_FROM_CONFIG_FILE_PATH=/mnt/config-files",
        production,
        check=False,
        timeout=60,
    )
    # No NPU tools here: a clear error (exit 2) naming what is missing, never the simulator.
    assert done.returncode == 2, done.stdout + done.stderr
    assert "npu-smi" in done.stderr and "Traceback" not in done.stderr
