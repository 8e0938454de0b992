"""Building and running the demo image as a user would, for the container test and its benchmark.

Nothing here needs a registry or a package index: the base image is built locally from Debian's
packages (debootstrap + `docker import`) when it is missing, and supervisor_pd is installed from a
wheelhouse built on this machine (the offline build path of docs/docker.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHEELHOUSE = REPO / "build" / "wheelhouse"
BASE_IMAGE = "local/debian:bookworm"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SOURCES_LIST = Path("/etc/apt/sources.list")


class Unavailable(Exception):
    """What this machine lacks to run the container test; the test is skipped with this reason."""


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def require_engine() -> None:
    if shutil.which("docker") is None:
        raise Unavailable("no docker command on PATH")
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Unavailable("`docker info` did not answer within 20 s") from exc
    if info.returncode != 0 or not info.stdout.strip():
        reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        raise Unavailable(f"no Docker engine running ({reason})")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (the only one reachable here)."""
    if SOURCES.exists():
        for line in SOURCES.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    if SOURCES_LIST.exists():
        for line in SOURCES_LIST.read_text().splitlines():
            match = re.match(r"deb\s+(\S+)\s+\S+", line)
            if match and "security" not in match.group(1):
                return match.group(1)
    return "http://deb.debian.org/debian"


def ensure_base_image(image: str = BASE_IMAGE) -> float:
    """Build `image` from Debian bookworm (python3 + venv) unless it exists; seconds spent."""
    if docker("image", "inspect", image, check=False).returncode == 0:
        return 0.0
    if shutil.which("debootstrap") is None:
        raise Unavailable(f"base image {image} is missing and debootstrap is not installed to build it")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sp-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        packages = "python3,python3-venv,ca-certificates"
        argv = ["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(root), debian_mirror()]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise Unavailable(f"debootstrap failed ({result.returncode}): {result.stdout.strip()[-500:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            ["docker", "import", "-", image], stdin=tar.stdout, capture_output=True, text=True, timeout=300
        )
        tar.stdout.close()
        tar.wait(timeout=60)
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr.strip()}")
    return time.monotonic() - began


def build_wheelhouse() -> float:
    """supervisor_pd's wheel and every dependency's, into build/wheelhouse; seconds spent."""
    began = time.monotonic()
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", str(REPO), "-w", str(WHEELHOUSE)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise Unavailable(f"could not build the wheelhouse: {result.stderr.strip()[-500:]}")
    return time.monotonic() - began


@dataclass(frozen=True)
class Built:
    image: str
    seconds: float
    size_bytes: int


def build_image(tag: str, base: str = BASE_IMAGE, no_cache: bool = False, target: str | None = None) -> Built:
    """`docker build` of the default (demo) target or `target`, offline from the wheelhouse."""
    argv = ["build", "-q", "--build-arg", f"BASE_IMAGE={base}", "--build-arg", "WHEELHOUSE=build/wheelhouse"]
    if no_cache:
        argv.append("--no-cache")
    if target is not None:
        argv += ["--target", target]
    began = time.monotonic()
    docker(*argv, "-t", tag, str(REPO), timeout=900)
    seconds = time.monotonic() - began
    size = int(docker("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())
    return Built(tag, seconds, size)


def published_port(container: str, port: int) -> int:
    """The host port Docker picked for `port` (published on 127.0.0.1 only)."""
    out = docker("port", container, f"{port}/tcp").stdout
    for line in out.splitlines():
        host, _, number = line.strip().rpartition(":")
        if host == "127.0.0.1":
            return int(number)
    raise RuntimeError(f"port {port} of {container} is not published on 127.0.0.1: {out!r}")
