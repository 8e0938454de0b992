"""How many Servers, which chips each one gets, and which are prefill or decode."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from supervisor_pd.confdir import ConfInputs, Document
from supervisor_pd.errors import InputError
from supervisor_pd.formats.server_config import ServerConfigFile
from supervisor_pd.plan.model import Role
from supervisor_pd.platform.facts import Chip, Level, Notice
from supervisor_pd.settings import Settings, env_name

MAX_SERVERS = 96  # the Controller's RankTableLoader refuses more (reference §5.3)
GROUP_SIZE = 16  # the Controller peers P and D within groups of at most 16 instances
_MODEL = "BackendConfig.ModelDeployConfig.ModelConfig[0]"


@dataclass(frozen=True)
class Layout:
    world_size: int
    groups: tuple[tuple[Chip, ...], ...]
    roles: tuple[Role, ...]
    p_rate: int
    d_rate: int
    rate_source: str
    notices: tuple[Notice, ...]


def world_size(inputs: ConfInputs) -> tuple[int, Document[ServerConfigFile]]:
    """NPUs per Server, from config.json (generated ports) or config1.json, and the file it came from."""
    docs = [inputs.template] if inputs.template is not None else [inputs.servers[n] for n in sorted(inputs.servers)]
    first = docs[0]
    assert first is not None
    for doc in docs:
        assert doc is not None
        model = doc.model.model
        if model.tp is not None and model.tp != model.worldSize:
            raise InputError(
                f"{doc.name}: {_MODEL}.tp",
                f"is {model.tp} but worldSize is {model.worldSize}; they must be equal (the deploy scripts "
                "count NPUs per Server with tp, the Server itself uses worldSize)",
            )
        if model.worldSize != first.model.world_size:
            raise InputError(
                f"{doc.name}: {_MODEL}.worldSize",
                f"is {model.worldSize} but {first.name} says {first.model.world_size}; prefill and decode "
                "Servers must use the same number of NPUs",
            )
    return first.model.world_size, first


def make_layout(chips: tuple[Chip, ...], inputs: ConfInputs, settings: Settings) -> Layout:
    size, source = world_size(inputs)
    count = len(chips)
    where = f"{source.name}: {_MODEL}.worldSize"
    if count % size:
        divisors = [d for d in range(1, count + 1) if count % d == 0]
        raise InputError(
            where,
            f"{size} does not divide the {count} visible NPU chips into equal Servers; "
            f"allowed: {', '.join(map(str, divisors))}",
        )
    servers = count // size
    if servers < 2:
        raise InputError(
            where,
            f"{count} chip(s) / worldSize {size} = {servers} Server; PD disaggregation needs at least 2 "
            "(one prefill, one decode): lower worldSize",
        )
    if servers > MAX_SERVERS:
        raise InputError(where, f"{servers} Servers is more than the Controller accepts ({MAX_SERVERS})")
    notices: list[Notice] = []
    groups = _group(chips, size, notices)
    p_rate, d_rate, rate_source = resolve_rates(inputs, settings, servers)
    if servers > GROUP_SIZE:
        notices.append(
            Notice(
                Level.INFO,
                "layout",
                f"{servers} Servers: the Controller pairs prefill and decode within groups of {GROUP_SIZE}",
            )
        )
    return Layout(
        world_size=size,
        groups=groups,
        roles=expected_roles(servers, p_rate, d_rate),
        p_rate=p_rate,
        d_rate=d_rate,
        rate_source=rate_source,
        notices=tuple(notices),
    )


def _group(chips: tuple[Chip, ...], size: int, notices: list[Notice]) -> tuple[tuple[Chip, ...], ...]:
    # Contiguous runs of logical ids, node by node, so a Server stays on one NUMA node when the
    # node holds a multiple of worldSize chips. A3 dies of one NPU have adjacent ids and stay paired.
    ordered = sorted(chips, key=lambda chip: (chip.numa_node is None, chip.numa_node or 0, chip.logical_id))
    groups = tuple(tuple(ordered[i : i + size]) for i in range(0, len(ordered), size))
    for number, group in enumerate(groups, start=1):
        nodes = sorted({chip.numa_node for chip in group if chip.numa_node is not None})
        if len(nodes) > 1:
            notices.append(
                Notice(
                    Level.WARNING,
                    f"server-{number}",
                    f"its {size} chips span NUMA nodes {', '.join(map(str, nodes))}: no node holds a multiple "
                    "of worldSize chips",
                )
            )
    return groups


def resolve_rates(inputs: ConfInputs, settings: Settings, servers: int) -> tuple[int, int, str]:
    """The P:D ratio: MINDIE_MS_P_RATE/D_RATE override ms_controller.json's default_p_rate/d_rate."""
    controller = inputs.controller.model
    p_env, d_env = env_name("p_rate"), env_name("d_rate")
    p_from = p_env if settings.p_rate is not None else f"{inputs.controller.name}: default_p_rate"
    d_from = d_env if settings.d_rate is not None else f"{inputs.controller.name}: default_d_rate"
    p = settings.p_rate if settings.p_rate is not None else controller.default_p_rate
    d = settings.d_rate if settings.d_rate is not None else controller.default_d_rate
    where = f"{p_from}, {d_from}"
    if (p == 0) != (d == 0):
        raise InputError(
            where,
            f"prefill rate {p} and decode rate {d}: both must be 0 (the Controller decides) or both above 0",
        )
    if p + d > servers:
        raise InputError(
            where,
            f"prefill rate {p} + decode rate {d} = {p + d} is more than the {servers} Servers; "
            f"p + d must be at most {servers}",
        )
    source = "automatic (the Controller decides)" if p == 0 else ", ".join(dict.fromkeys([p_from, d_from]))
    return p, d, source


def expected_roles(servers: int, p_rate: int, d_rate: int) -> tuple[Role, ...]:
    """The Controller's split: the first ceil(n * p / (p + d)) Servers in ranktable order are prefill."""
    if p_rate == 0:
        return tuple(Role.AUTO for _ in range(servers))
    prefill = min(servers - 1, max(1, math.ceil(servers * p_rate / (p_rate + d_rate))))
    return tuple(Role.PREFILL if i < prefill else Role.DECODE for i in range(servers))


def numa_of(group: tuple[Chip, ...]) -> int | None:
    """The node most of a Server's chips sit on (the lowest on a tie), or None if unknown."""
    nodes = Counter(chip.numa_node for chip in group if chip.numa_node is not None)
    if not nodes:
        return None
    best = max(nodes.values())
    return min(node for node, seen in nodes.items() if seen == best)
