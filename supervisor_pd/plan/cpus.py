"""Which CPUs each process may use.

Each Server gets CPUs of its NPUs' NUMA node that are also in the container's CPU set, split
evenly among the Servers on that node. A few CPUs (SUPERVISOR_PD_CONTROL_CPUS; default one per
32, at least one) are kept for the supervisor, Controller and Coordinator, taken from the node
with the most CPUs to spare. `auto` degrades with a warning where the topology does not allow
this, `strict` fails instead, `off` binds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor_pd.errors import InputError
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.platform.facts import Level, Notice
from supervisor_pd.settings import env_name

Cpus = tuple[int, ...]


@dataclass(frozen=True)
class CpuPlan:
    servers: tuple[Cpus | None, ...]
    control: Cpus | None
    notices: tuple[Notice, ...]


class _Planner:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.notices: list[Notice] = []

    def degrade(self, message: str) -> None:
        if self.mode == "strict":
            raise InputError(f"{env_name('cpu_binding')}=strict", message)
        self.notices.append(Notice(Level.WARNING, "cpu binding", message))


def plan_cpus(
    mode: str,
    control_count: int,
    container: frozenset[int],
    nodes: dict[int, frozenset[int]],
    server_nodes: list[int | None],
) -> CpuPlan:
    """CPU sets for the Servers (in order) and for the control plane."""
    count = len(server_nodes)
    if mode == "off":
        note = Notice(Level.INFO, "cpu binding", f"off ({env_name('cpu_binding')}=off): processes float")
        return CpuPlan((None,) * count, None, (note,))
    planner = _Planner(mode)
    reserve = control_count or max(1, len(container) // 32)
    by_node = _numa_pools(planner, container, nodes, server_nodes)

    control = _take_control(planner, reserve, by_node)
    spare = container - set(control or ())
    result: list[Cpus | None] = [None] * count
    for key, (pool, members) in by_node.items():
        pool = pool - set(control or ())
        if not members:
            continue
        if not pool:
            planner.degrade(
                f"NUMA node {key} has no CPU in the container's CPU set; Servers "
                f"{_names(members)} use CPUs {format_cpulist(spare)} without NUMA affinity"
            )
            for index in members:
                result[index] = tuple(sorted(spare))
            continue
        if len(pool) < len(members):
            planner.degrade(
                f"NUMA node {key} has {len(pool)} CPU(s) for {len(members)} Servers; Servers {_names(members)} "
                f"share CPUs {format_cpulist(pool)}"
            )
            for index in members:
                result[index] = tuple(sorted(pool))
            continue
        for index, share in zip(members, _split(sorted(pool), len(members)), strict=True):
            result[index] = share
    return CpuPlan(tuple(result), control, tuple(planner.notices))


def _numa_pools(
    planner: _Planner, container: frozenset[int], nodes: dict[int, frozenset[int]], server_nodes: list[int | None]
) -> dict[int | str, tuple[frozenset[int], list[int]]]:
    """Pools keyed by NUMA node (or "all" when NUMA cannot be used), with their Servers."""
    unknown = [index for index, node in enumerate(server_nodes) if node is None or node not in nodes]
    if len(nodes) <= 1 or unknown:
        if len(nodes) > 1:
            planner.degrade(
                f"the NUMA node of Servers {_names(unknown)} is unknown; CPUs are split without NUMA affinity"
            )
        return {"all": (container, list(range(len(server_nodes))))}
    pools: dict[int | str, tuple[frozenset[int], list[int]]] = {
        node: (cpus & container, []) for node, cpus in nodes.items()
    }
    for index, node in enumerate(server_nodes):
        pools[node][1].append(index)  # type: ignore[index]
    return pools


def _take_control(
    planner: _Planner, reserve: int, pools: dict[int | str, tuple[frozenset[int], list[int]]]
) -> Cpus | None:
    # Prefer a node no Server uses; else the one with the most CPUs per Server.
    def spare_score(key: int | str) -> tuple[bool, float, str]:
        pool, members = pools[key]
        return (not members and bool(pool), len(pool) / max(1, len(members)), str(key))

    key = max(pools, key=spare_score)
    pool, members = pools[key]
    if len(pool) - reserve < max(1, len(members)):
        planner.degrade(
            f"too few CPUs ({len(pool)}) to keep {reserve} for the supervisor, Controller and Coordinator; "
            "they share the Servers' CPUs"
        )
        return None
    return tuple(sorted(pool)[-reserve:])


def _split(cpus: list[int], parts: int) -> list[Cpus]:
    size, extra = divmod(len(cpus), parts)
    shares: list[Cpus] = []
    start = 0
    for part in range(parts):
        end = start + size + (1 if part < extra else 0)
        shares.append(tuple(cpus[start:end]))
        start = end
    return shares


def _names(indexes: list[int]) -> str:
    return ", ".join(f"server-{index + 1}" for index in indexes)
