"""NUMA nodes and their CPUs from sysfs, and the node of a PCI device (reference §9, §7.6)."""

from __future__ import annotations

import re

from supervisor_pd.platform.cpuset import parse_cpulist
from supervisor_pd.platform.hostfs import HostFS


def numa_nodes(host: HostFS) -> dict[int, frozenset[int]]:
    """`/sys/devices/system/node/node<N>/cpulist` for every node that has CPUs."""
    nodes: dict[int, frozenset[int]] = {}
    try:
        entries = list(host.path("/sys/devices/system/node").iterdir())
    except OSError:
        return nodes
    for entry in entries:
        match = re.fullmatch(r"node(\d+)", entry.name)
        if not match:
            continue
        text = host.read_text(f"/sys/devices/system/node/{entry.name}/cpulist")
        if text is None:
            continue
        try:
            cpus = parse_cpulist(text)
        except ValueError:
            continue
        if cpus:
            nodes[int(match.group(1))] = cpus
    return dict(sorted(nodes.items()))


def pci_numa_node(host: HostFS, bdf: str) -> int | None:
    """The NUMA node sysfs gives for a PCI device, or None when unknown (-1 or missing)."""
    text = host.read_text(f"/sys/bus/pci/devices/{bdf}/numa_node")
    if text is None:
        return None
    text = text.strip()
    if not text.lstrip("-").isdigit():
        return None
    node = int(text)
    return node if node >= 0 else None


def ephemeral_port_range(host: HostFS) -> tuple[int, int]:
    """The kernel's ephemeral port range; Linux's default when it cannot be read."""
    text = host.read_text("/proc/sys/net/ipv4/ip_local_port_range") or ""
    parts = text.split()
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        low, high = int(parts[0]), int(parts[1])
        if 0 < low <= high <= 65535:
            return low, high
    return 32768, 60999
