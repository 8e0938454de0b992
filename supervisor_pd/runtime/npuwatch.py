"""NPU and link health while running: when to collect, what a collection says, and the policy.

The collection itself runs outside the engine (Effects.collect_npu, runtime/npucollect.py) and
comes back as an `NpuReport`. Here, in the loop and without I/O:

- one collection at a time, every SUPERVISOR_PD_NPU_HEALTH_INTERVAL: one still going when the
  next is due is not started twice, the next begins when it ends;
- each chip's verdict on three counts (npu-smi health; hccn_tool link; hccn_tool net health),
  each kept from the last collection that could tell: a tool that hangs, fails or prints garbage
  leaves its readings unknown, which neither makes a fault (a broken tool is not a broken chip)
  nor clears one (nor is it evidence that the chip recovered);
- a Server with a bad chip or link has `npu_fault` set: its readiness does not count
  (runtime/health.py) and, by SUPERVISOR_PD_NPU_FAULT, it is shown `unhealthy` and left running
  (report) or failed, and so restarted under the restart budget and backoff (restart).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from supervisor_pd.platform.npuhealth import HEALTHY
from supervisor_pd.runtime.events import NpuReport
from supervisor_pd.runtime.npucollect import ChipResult, ChipTarget, ToolFailure
from supervisor_pd.runtime.states import STOPPING_PHASES, UP, ProcState, RestartCause

if TYPE_CHECKING:
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.engine import Engine

# npu-smi's health words: OK, Warning (a minor alarm: the chip keeps working), Alarm (major),
# Critical. Warning is shown, not acted on; anything past it (or a word we do not know) is a fault.
NOT_FAULTS = frozenset({HEALTHY, "Warning"})
LINK_UP = "UP"
NET_OK = "Success"
# hccn_tool's net health before a detection address is set (`hccn_tool -i N -netdetect -s address`)
# or while it is being set: nothing was measured, which says nothing about the network.
NET_UNMEASURED = frozenset({"Init", "Detect ip set"})


@dataclass
class ChipState:
    """One chip as the engine knows it: the latest result and the verdict on each count."""

    target: ChipTarget
    server: str
    logical_id: int
    latest: ChipResult | None = None  # of the last collection (its fields None where unknown)
    health_fault: str | None = None
    link_fault: str | None = None
    net_fault: str | None = None
    information: str | None = None  # npu-smi's words for the health fault, for the log and status

    @property
    def name(self) -> str:
        return f"NPU {self.target.npu_id} chip {self.target.chip_id}"

    @property
    def faults(self) -> list[str]:
        return [fault for fault in (self.health_fault, self.link_fault, self.net_fault) if fault is not None]

    def update(self, result: ChipResult) -> None:
        self.latest = result
        reading = result.reading
        if reading is not None:
            if reading.health in NOT_FAULTS:
                self.health_fault = self.information = None
            else:
                code = result.detail.error_code if result.detail is not None else None
                self.health_fault = f"{self.name}: health {reading.health}" + (f", error code {code}" if code else "")
                self.information = result.detail.information if result.detail is not None else None
        if result.link is not None:
            self.link_fault = None if result.link == LINK_UP else f"{self.name}: link {result.link}"
        if result.net is not None and result.net not in NET_UNMEASURED:
            self.net_fault = None if result.net == NET_OK else f"{self.name}: network health {result.net}"


@dataclass
class Tools:
    """How the tools did: errors since the start per tool, and the last collection's failures."""

    errors: Counter[str] = field(default_factory=Counter)
    failures: tuple[ToolFailure, ...] = ()


class NpuWatch:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        settings = engine.settings
        self.interval = settings.npu_health_interval
        self.policy = settings.npu_fault
        self.timeout = settings.npu_health_timeout
        self.chips: dict[tuple[int, int], ChipState] = {}
        for child in engine.children.values():
            server = child.spec.server
            for device in server.devices if server is not None else ():
                real = device.device_ip_source not in ("", "placeholder")
                target = ChipTarget(device.npu_id, device.chip_id, device.phy_id, real)
                self.chips[(device.npu_id, device.chip_id)] = ChipState(target, child.name, device.logical_id)
        self.targets = tuple(state.target for state in self.chips.values())
        self.enabled = self.interval > 0 and bool(self.targets)
        self.next_due = engine.started
        self.running_since: float | None = None
        self.collections = 0
        self.last: NpuReport | None = None
        self.tools = Tools()

    # --- when --------------------------------------------------------------------------------

    def schedule(self, now: float) -> None:
        if not self.enabled or self.running_since is not None or now < self.next_due:
            return
        if self.engine.phase in STOPPING_PHASES:
            return
        self.running_since = now
        self.next_due = now + self.interval
        self.engine.fx.collect_npu(self.targets, self.timeout)

    def moments(self) -> list[float]:
        return [self.next_due] if self.enabled and self.running_since is None else []

    # --- what a collection says --------------------------------------------------------------

    def reported(self, report: NpuReport) -> None:
        self.running_since = None
        self.collections += 1
        self.last = report
        self._tools(report.failures)
        for result in report.chips:
            state = self.chips.get((result.npu_id, result.chip_id))
            if state is not None:
                state.update(result)
        for child in self.engine.children.values():
            if child.spec.server is not None:
                self._judge(child, report)

    def faults_of(self, name: str) -> list[ChipState]:
        return [state for state in self.chips.values() if state.server == name and state.faults]

    def _tools(self, failures: tuple[ToolFailure, ...]) -> None:
        """Count every failure; log once when a tool starts failing and once when it answers again."""
        before = {failure.tool for failure in self.tools.failures}
        now = {failure.tool for failure in failures}
        self.tools.errors.update(failure.tool for failure in failures)
        self.tools.failures = failures
        for tool in sorted(now - before):
            error = next(failure.error for failure in failures if failure.tool == tool)
            self.engine.log(f"NPU health: {error}; its readings are unknown until it answers (not a chip fault)")
        for tool in sorted(before - now):
            self.engine.log(f"NPU health: {tool} answers again")

    def _judge(self, child: Child, report: NpuReport) -> None:
        engine = self.engine
        states = self.faults_of(child.name)
        fault = "; ".join(reason for state in states for reason in state.faults) or None
        previous = child.npu_fault
        if fault != previous:
            child.npu_fault = fault
            # Readiness is a dated fact: what was observed before the chip changed says nothing now.
            child.readiness.clear()
            if fault is None:
                engine.log(f"{child.name}: NPU fault cleared (was: {previous})")
            else:
                said = "; ".join(s.information for s in states if s.information)
                engine.log(f"{child.name}: NPU fault: {fault}" + (f" ({said})" if said else ""))
        if engine.phase in STOPPING_PHASES:
            return
        if fault is None:
            if previous is not None and child.state is ProcState.UNHEALTHY and child.failures == 0:
                engine.transition(child, ProcState.RUNNING, "its NPUs and links are healthy again")
            return
        if child.state not in UP:
            return  # marked; acted on when it comes up (runtime/health.py)
        # restart: only on a reading taken during this run, so a restarted Server is judged by what
        # its chips say since it started, not by the reading that had it restarted.
        started = child.started_at if child.started_at is not None else report.started
        if self.policy == "restart" and report.started >= started:
            engine.fail(child, f"{fault} (SUPERVISOR_PD_NPU_FAULT=restart)", RestartCause.NPU_FAULT)
        elif child.state is ProcState.RUNNING:
            engine.transition(child, ProcState.UNHEALTHY, fault)
