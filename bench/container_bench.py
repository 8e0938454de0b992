"""The demo image: build time, size, time to ready and to stop.

    python bench/container_bench.py [--runs 3]

Needs a Docker engine (and debootstrap when the local base image is missing). Builds the
wheelhouse, then the demo image from it with --no-cache (the offline path of docs/docker.md),
then starts it `--runs` times: seconds from `docker run` to /readyz 200 through the published
port (127.0.0.1 only), and from `docker stop` to exit. Writes the "container" section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import update_section
from tests import container
from tests.simstack import http

TAG = "supervisor-pd:bench"


def start_and_stop(name: str) -> tuple[float, float, int]:
    began = time.monotonic()
    container.docker("run", "-d", "--name", name, "-p", "127.0.0.1::8080", TAG)
    try:
        port = container.published_port(name, 8080)
        deadline = began + 180
        while http("GET", f"http://127.0.0.1:{port}/readyz", timeout=2)[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the demo container was not ready within 180 s")
            time.sleep(0.05)
        ready = time.monotonic() - began
        began = time.monotonic()
        container.docker("stop", "-t", "30", name, timeout=60)
        stopped = time.monotonic() - began
        code = int(container.docker("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip())
        return ready, stopped, code
    finally:
        container.docker("rm", "-f", name, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="container starts to time")
    args = parser.parse_args()
    container.require_engine()
    base_seconds = container.ensure_base_image()
    base_size = int(container.docker("image", "inspect", container.BASE_IMAGE, "--format", "{{.Size}}").stdout)
    wheel_seconds = container.build_wheelhouse()
    wheels = sorted(container.WHEELHOUSE.glob("*.whl"))
    wheel_bytes = sum(path.stat().st_size for path in wheels)
    built = container.build_image(TAG, no_cache=True)
    cached = container.build_image(TAG)
    runs = [start_and_stop(f"sp-bench-{i}") for i in range(args.runs)]
    ready = [r[0] for r in runs]
    stopped = [r[1] for r in runs]
    mib = 1024 * 1024
    rows = [
        (
            "base image (`local/debian:bookworm`: debootstrap minbase + python3, python3-venv)",
            f"{base_size / mib:.0f} MiB",
        ),
        ("demo image", f"{built.size_bytes / mib:.0f} MiB"),
        ("of which supervisor_pd's venv and files", f"{(built.size_bytes - base_size) / mib:.0f} MiB"),
        (f"wheelhouse ({len(wheels)} wheels)", f"{wheel_bytes / mib:.1f} MiB, built in {wheel_seconds:.1f} s"),
        ("`docker build --no-cache` from the wheelhouse (no index)", f"{built.seconds:.1f} s"),
        ("`docker build` again, layers cached", f"{cached.seconds:.1f} s"),
        (
            f"`docker run` to /readyz 200 (median of {len(runs)})",
            f"{statistics.median(ready):.1f} s (min {min(ready):.1f}, max {max(ready):.1f})",
        ),
        (
            f"`docker stop -t 30` to exit (median of {len(runs)})",
            f"{statistics.median(stopped):.1f} s, exit codes {sorted({r[2] for r in runs})}",
        ),
    ]
    if base_seconds:
        rows.insert(1, ("building that base image (debootstrap + docker import)", f"{base_seconds:.0f} s"))
    body = "\n".join(
        [
            "## The demo image",
            "",
            "Command: `python bench/container_bench.py` (Docker engine "
            f"{container.docker('version', '--format', '{{.Server.Version}}').stdout.strip()}, legacy builder).",
            "",
            "| what | figure |",
            "|---|---|",
            *(f"| {what} | {figure} |" for what, figure in rows),
        ]
    )
    print(body)
    update_section("container", body)


if __name__ == "__main__":
    main()
