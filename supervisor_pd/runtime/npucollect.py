"""One collection of NPU and link health: which tools run, concurrently, and what came back.

Per collection (docs/npu-health.md):
  1 x `npu-smi info`                   every visible chip in one run (the summary table)
  2 x hccn_tool per chip with a real device IP: `-link -g` and `-net_health -g` (a placeholder
                                       IP means no RoCE port was found for it: nothing to ask)
  1 x `npu-smi info -t health`         per chip whose summary health is not OK, for its error code
so 1 + 2L + B runs, L chips with a real device IP and B chips not OK: 17 on a healthy A2, 33 on a
healthy A3. The hccn_tool runs start with the summary; the detail runs follow it.

Each run is blocking (`run`, a ToolRunner's) and goes to a worker thread, at most `limiter`'s
count at a time, each within its timeout, so a hung tool never holds the event loop. A tool that
fails, times out or prints what its parser refuses leaves its readings unknown (None) and is
listed in `failures`; nothing here raises for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread

from supervisor_pd.platform.npuhealth import (
    HEALTHY,
    ChipReading,
    HealthDetail,
    health_argv,
    link_argv,
    net_health_argv,
    parse_health,
    parse_link,
    parse_net_health,
    parse_summary,
    summary_argv,
)
from supervisor_pd.platform.tools import ToolError, ToolResult

T = TypeVar("T")
Runner = Callable[[list[str], float], ToolResult]
# Worker threads (so tool processes) at once: the A3's 33 runs in about four waves.
CONCURRENCY = 8


@dataclass(frozen=True)
class ChipTarget:
    """A chip to watch: npu-smi names it (npu_id, chip_id), hccn_tool by its physical id."""

    npu_id: int
    chip_id: int
    phy_id: int
    link: bool  # its device IP is real: hccn_tool is asked about its link and network health


@dataclass(frozen=True)
class ChipResult:
    """What one collection learnt of a chip; None wherever it learnt nothing."""

    npu_id: int
    chip_id: int
    phy_id: int
    reading: ChipReading | None  # its row of `npu-smi info`
    detail: HealthDetail | None  # `npu-smi info -t health`, asked only when its health is not OK
    link: str | None  # "UP" / "DOWN"
    net: str | None  # "Success" or hccn_tool's word for what failed


@dataclass(frozen=True)
class ToolFailure:
    tool: str  # "npu-smi", "hccn_tool"
    command: str
    error: str


@dataclass
class Collection:
    chips: tuple[ChipResult, ...]
    failures: tuple[ToolFailure, ...]
    runs: int


async def collect(
    targets: Iterable[ChipTarget],
    run: Runner,
    tool_timeout: float,
    limiter: anyio.CapacityLimiter,
    hccn_tool: bool = True,
) -> Collection:
    """`hccn_tool`: it is on PATH. Where it is not (an image without it, device IPs from
    /etc/hccn.conf), no link is asked about and that is one failure, not two per chip."""
    targets = tuple(targets)
    failures: list[ToolFailure] = []
    runs = 0
    asks_links = any(target.link for target in targets)
    if asks_links and not hccn_tool:
        failures.append(ToolFailure("hccn_tool", "hccn_tool", "`hccn_tool` was not found on PATH: links not checked"))

    async def call(argv: list[str], parse: Callable[[str], T]) -> T | None:
        nonlocal runs
        runs += 1
        command = " ".join(argv)
        try:
            # Abandoned on cancel (the supervisor stopping): the thread ends within its timeout.
            result = await anyio.to_thread.run_sync(run, argv, tool_timeout, limiter=limiter, abandon_on_cancel=True)
        except ToolError as exc:
            failures.append(ToolFailure(argv[0], command, str(exc)))
            return None
        if result.returncode != 0:
            failures.append(ToolFailure(argv[0], command, result.failure()))
            return None
        try:
            return parse(result.stdout)
        except ValueError as exc:  # the parsers' ParseError
            failures.append(ToolFailure(argv[0], command, f"`{command}` printed what cannot be read: {exc}"))
            return None

    readings: dict[tuple[int, int], ChipReading] = {}
    details: dict[tuple[int, int], HealthDetail] = {}
    links: dict[int, str] = {}
    nets: dict[int, str] = {}
    wanted = {(t.npu_id, t.chip_id) for t in targets}

    async def detail(key: tuple[int, int]) -> None:
        found = await call(health_argv(*key), parse_health)
        if found is not None:
            details[key] = found

    async def summary() -> None:
        rows = await call(summary_argv(), parse_summary)
        for row in rows or ():
            if (row.npu_id, row.chip_id) in wanted:
                readings[(row.npu_id, row.chip_id)] = row
        async with anyio.create_task_group() as tg:
            for key, row in readings.items():
                if row.health != HEALTHY:
                    tg.start_soon(detail, key)

    async def link(phy: int) -> None:
        found = await call(link_argv(phy), parse_link)
        if found is not None:
            links[phy] = found

    async def net(phy: int) -> None:
        found = await call(net_health_argv(phy), parse_net_health)
        if found is not None:
            nets[phy] = found

    async with anyio.create_task_group() as tg:
        tg.start_soon(summary)
        for target in targets:
            if target.link and hccn_tool:
                tg.start_soon(link, target.phy_id)
                tg.start_soon(net, target.phy_id)
    chips = tuple(
        ChipResult(
            t.npu_id,
            t.chip_id,
            t.phy_id,
            readings.get((t.npu_id, t.chip_id)),
            details.get((t.npu_id, t.chip_id)),
            links.get(t.phy_id),
            nets.get(t.phy_id),
        )
        for t in targets
    )
    return Collection(chips, tuple(failures), runs)
