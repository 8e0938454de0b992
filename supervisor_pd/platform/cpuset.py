"""CPU lists (`0-3,8`) and the container's CPU set: cgroup v2, else cgroup v1, else affinity."""

from __future__ import annotations

import os
from collections.abc import Iterable

from supervisor_pd.platform.hostfs import HostFS


def parse_cpulist(text: str) -> frozenset[int]:
    """Parse the kernel's list format (`0-3,8,10-11`). Raises ValueError on anything else."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"{text.strip()!r} is not a CPU list")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise ValueError(f"{text.strip()!r} is not a CPU list")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """The kernel's compact list format for a set of CPUs."""
    ordered = sorted(set(cpus))
    ranges: list[str] = []
    start = previous = None
    for cpu in ordered:
        if start is None:
            start = previous = cpu
        elif cpu == previous + 1:  # type: ignore[operator]
            previous = cpu
        else:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            start = previous = cpu
    if start is not None:
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(ranges)


def _cgroup_paths(host: HostFS) -> tuple[str | None, str | None]:
    """This process's cgroup path in the v2 hierarchy and in the v1 cpuset hierarchy."""
    text = host.read_text("/proc/self/cgroup") or ""
    v2 = v1 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "cpuset" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def container_cpuset(host: HostFS) -> tuple[frozenset[int], str]:
    """The CPUs this container may use, and where that answer came from."""
    v2_path, v1_path = _cgroup_paths(host)
    candidates: list[str] = []
    for base, own, name in (
        ("/sys/fs/cgroup", v2_path, "cpuset.cpus.effective"),
        ("/sys/fs/cgroup/cpuset", v1_path, "cpuset.effective_cpus"),
    ):
        if own and own != "/":
            candidates.append(f"{base}/{own.strip('/')}/{name}")
        candidates.append(f"{base}/{name}")
    for candidate in candidates:
        text = host.read_text(candidate)
        if text is None or not text.strip():
            continue
        try:
            cpus = parse_cpulist(text)
        except ValueError:
            continue
        if cpus:
            return cpus, candidate
    return frozenset(os.sched_getaffinity(0)), "sched_getaffinity"
