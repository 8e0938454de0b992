"""One NPU health collection with fake tools: which runs, what each fault leaves, off the loop."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import anyio
import pytest

from supervisor_pd.platform.tools import ToolError, ToolResult
from supervisor_pd.runtime.npucollect import ChipTarget, Collection, collect
from supervisor_pd.simulator.npusummary import ChipLine, render_health, render_summary

pytestmark = pytest.mark.anyio

A2 = tuple(ChipTarget(npu, 0, npu, link=True) for npu in range(8))


def summary(health: dict[int, str] | None = None) -> str:
    lines = [
        ChipLine(npu, 0, npu, "910B3", (health or {}).get(npu, "OK"), "93.6", "40", "0", 3161, 65536,
                 f"0000:{0xC1 + npu:02X}:00.0")
        for npu in range(8)
    ]  # fmt: skip
    return render_summary("23.0.6", lines, per_chip=False)


class FakeTools:
    """npu-smi and hccn_tool as functions of argv; `faults` changes what they print or do."""

    def __init__(self, health: dict[int, str] | None = None, links: dict[int, str] | None = None) -> None:
        self.health = health or {}
        self.links = links or {}
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.hang: set[str] = set()  # tools that time out
        self.garbage: set[str] = set()
        self.fail: set[str] = set()
        self.peers = 0  # each run waits (bounded) until this many run at once: concurrency shown, not timed
        self.seen_peers = threading.Condition(self.lock)

    def __call__(self, argv: list[str], timeout: float) -> ToolResult:
        with self.lock:
            self.calls.append(argv)
            self.running += 1
            self.most = max(self.most, self.running)
            self.seen_peers.notify_all()
            self.seen_peers.wait_for(lambda: self.most >= self.peers, timeout=10)
        try:
            tool = argv[0]
            if tool in self.hang:
                time.sleep(timeout)
                raise ToolError(f"`{' '.join(argv)}` did not finish within {timeout:g} s")
            if tool in self.garbage:
                return ToolResult(tuple(argv), 0, "*** segfault in libdcmi ***\nNPU ID : zero\n", "")
            if tool in self.fail:
                return ToolResult(tuple(argv), 255, "dcmi model initialized failed, ret is -8020\n", "")
            return ToolResult(tuple(argv), 0, self._text(argv), "")
        finally:
            with self.lock:
                self.running -= 1

    def _text(self, argv: list[str]) -> str:
        if argv == ["npu-smi", "info"]:
            return summary(self.health)
        if argv[:4] == ["npu-smi", "info", "-t", "health"]:
            npu = int(argv[5])
            return render_health(self.health.get(npu, "OK"), "80E18005", "HBM multi-bit ECC error")
        phy = int(argv[2])
        if argv[3] == "-link":
            return f"link status: {self.links.get(phy, 'UP')}\n"
        return "net health status: Success\n"

    def count(self, predicate: Callable[[list[str]], bool]) -> int:
        return sum(1 for argv in self.calls if predicate(argv))


async def run(
    tools: FakeTools, targets: tuple[ChipTarget, ...] = A2, limit: int = 8, limit_s: float = 1.0
) -> Collection:
    return await collect(targets, tools, limit_s, anyio.CapacityLimiter(limit))


async def test_a_healthy_host_costs_one_npu_smi_and_two_hccn_tool_runs_per_chip() -> None:
    tools = FakeTools()
    found = await run(tools)
    assert found.runs == len(tools.calls) == 1 + 2 * 8
    assert tools.count(lambda argv: argv == ["npu-smi", "info"]) == 1
    assert not found.failures
    first = found.chips[0]
    assert first.reading is not None and first.reading.health == "OK" and first.reading.hbm_total_mb == 65536
    assert first.detail is None  # not asked: its summary health is OK
    assert (first.link, first.net) == ("UP", "Success")


async def test_only_a_chip_that_is_not_ok_is_asked_for_its_error_code() -> None:
    tools = FakeTools(health={3: "Alarm"})
    found = await run(tools)
    details = [argv for argv in tools.calls if "health" in argv]
    assert details == [["npu-smi", "info", "-t", "health", "-i", "3", "-c", "0"]]
    assert found.runs == 1 + 2 * 8 + 1
    chip = found.chips[3]
    assert chip.reading is not None and chip.reading.health == "Alarm"
    assert chip.detail is not None and chip.detail.error_code == "80E18005"


async def test_chips_without_a_real_device_ip_get_no_hccn_tool_run() -> None:
    targets = tuple(ChipTarget(npu, 0, npu, link=npu < 2) for npu in range(8))
    tools = FakeTools()
    found = await run(tools, targets)
    assert tools.count(lambda argv: argv[0] == "hccn_tool") == 4
    assert found.chips[5].link is None and found.chips[5].reading is not None


async def test_without_hccn_tool_no_link_is_asked_and_that_is_one_failure() -> None:
    tools = FakeTools()
    found = await collect(A2, tools, 1.0, anyio.CapacityLimiter(8), hccn_tool=False)
    assert tools.calls == [["npu-smi", "info"]]
    assert [failure.tool for failure in found.failures] == ["hccn_tool"]
    assert all(chip.reading is not None and chip.link is None for chip in found.chips)


async def test_a_link_down_is_read() -> None:
    found = await run(FakeTools(links={5: "DOWN"}))
    assert found.chips[5].link == "DOWN" and found.chips[4].link == "UP"


@pytest.mark.parametrize("fault", ["garbage", "fail", "hang"])
async def test_a_broken_npu_smi_leaves_its_readings_unknown_and_is_listed(fault: str) -> None:
    tools = FakeTools()
    getattr(tools, fault).add("npu-smi")
    found = await run(tools, limit_s=0.2)
    assert all(chip.reading is None for chip in found.chips)
    assert [failure.tool for failure in found.failures] == ["npu-smi"]
    assert all(chip.link == "UP" for chip in found.chips)  # hccn_tool still answered


@pytest.mark.parametrize("fault", ["garbage", "fail", "hang"])
async def test_a_broken_hccn_tool_leaves_links_unknown(fault: str) -> None:
    tools = FakeTools()
    getattr(tools, fault).add("hccn_tool")
    found = await run(tools, limit_s=0.2)
    assert all(chip.link is None and chip.net is None for chip in found.chips)
    assert all(chip.reading is not None for chip in found.chips)
    assert {failure.tool for failure in found.failures} == {"hccn_tool"}
    assert len(found.failures) == 16


async def test_runs_at_most_the_limiters_count_at_once() -> None:
    tools = FakeTools()
    tools.peers = 3
    await run(tools, limit=3)
    assert tools.most == 3


async def test_a_hung_tool_never_holds_the_event_loop() -> None:
    tools = FakeTools()
    tools.hang.add("npu-smi")
    ticks: list[float] = []

    async def heartbeat() -> None:
        while True:
            ticks.append(time.monotonic())
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat)
        started = time.monotonic()
        await run(tools, limit_s=0.5)
        took = time.monotonic() - started
        tg.cancel_scope.cancel()
    assert took >= 0.5
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert len(ticks) > 10 and max(gaps) < 0.25, max(gaps)
