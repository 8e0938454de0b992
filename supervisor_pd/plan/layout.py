"""How many Servers, which chips each one gets, and which are prefill or decode."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from supervisor_pd.confdir import ConfInputs, Document
from supervisor_pd.errors import InputError
from supervisor_pd.formats.server_config import ServerConfigFile
from supervisor_pd.plan.model import Role
from supervisor_pd.platform.facts import Chip, Level, Notice
from supervisor_pd.settings import Settings, env_name

# MindIE-Motor DefaultGroupGenerator.cpp GenerateGroups: more than LIMIT_MAX (16) instances outside
# multi-node mode fails, and NodeScheduler::PDModeInit then posts no role at all. (RankTableLoader
# would read up to 96.)
MAX_SERVERS = 16
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
        raise InputError(
            where,
            f"{count} chip(s) / worldSize {size} = {servers} Servers: MindIE's Controller gives roles to at most "
            f"{MAX_SERVERS} in one container (DefaultGroupGenerator LIMIT_MAX); raise worldSize",
        )
    notices: list[Notice] = []
    groups = _group(chips, size, notices)
    p_rate, d_rate, rate_source = resolve_rates(inputs, settings, servers)
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
    """The Controller's split, in ranktable order: the prefill Servers first.

    MindIE-Motor InstanceRoleManager::AssignRoleByDefiniteRatio with
    ProportionCalculator::InitPdBestRatioWithExternInput: one Server at a time goes to prefill
    while the prefill side's weight is not above the decode side's, else to decode. The weights
    are crossed (the caller passes the decode rate as the prefill "ability"), so each prefill
    Server adds `d_rate` and each decode Server adds `p_rate`."""
    if p_rate == 0:
        return tuple(Role.AUTO for _ in range(servers))
    prefill = decode = 0
    prefill_weight = decode_weight = 0
    while prefill + decode < servers:
        if prefill_weight <= decode_weight:
            prefill, prefill_weight = prefill + 1, prefill_weight + d_rate
        else:
            decode, decode_weight = decode + 1, decode_weight + p_rate
    return tuple(Role.PREFILL if i < prefill else Role.DECODE for i in range(servers))


def numa_of(group: tuple[Chip, ...]) -> int | None:
    """The node most of a Server's chips sit on (the lowest on a tie), or None if unknown."""
    nodes = Counter(chip.numa_node for chip in group if chip.numa_node is not None)
    if not nodes:
        return None
    best = max(nodes.values())
    return min(node for node, seen in nodes.items() if seen == best)
