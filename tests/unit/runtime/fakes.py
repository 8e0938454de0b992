"""A fake of the engine's effects (see supervisor's DummyOptions) and a harness that drives an
engine through events and a clock moved by hand: no process, socket or sleep."""

from __future__ import annotations

import errno
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor_pd.plan.planner import make_plan
from supervisor_pd.runtime.engine import Engine
from supervisor_pd.runtime.events import Answered, Drain, Event, Exited, GroupGone, HooksDone, Probe, Restart, Signal
from supervisor_pd.runtime.mindie import MindieRules
from supervisor_pd.runtime.probes import Result
from supervisor_pd.runtime.spec import HttpCheck, ProcessSpec, build_specs
from supervisor_pd.runtime.states import ProcState
from supervisor_pd.settings import Settings
from tests import factories

FAST = {
    "health_interval": 5.0,
    "health_timeout": 1.0,
    "restart_backoff": 1.0,
    "restart_backoff_max": 8.0,
    "grace_seconds": 30.0,
    "stop_seconds": 10.0,
    "ready_seconds": 600.0,
    "controller_stall_seconds": 60.0,
}


@dataclass
class ProbeCall:
    name: str
    run: int
    probe: Probe
    checks: tuple[HttpCheck, ...]
    sent: float
    answered: bool = False


@dataclass
class FakeEffects:
    applies_cpus: bool = False
    clock: float = 1000.0
    logs: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    probes: list[ProbeCall] = field(default_factory=list)
    spawn_errors: list[OSError] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)
    tracked: dict[str, int] = field(default_factory=dict)
    busy_ports: set[int] = field(default_factory=set)
    next_pid: int = 100

    def now(self) -> float:
        return self.clock

    def wall(self) -> float:
        return 1_700_000_000.0 + self.clock

    def log(self, message: str, level: str = "info") -> None:
        self.logs.append(message)
        self.levels.append(level)

    def ports_in_use(self, ports: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(port for port in ports if port in self.busy_ports)

    def spawn(self, spec: ProcessSpec, run: int) -> int:
        if self.spawn_errors:
            raise self.spawn_errors.pop(0)
        self.next_pid += 1
        self.calls.append(("spawn", spec.name, self.next_pid))
        return self.next_pid

    def signal(self, pgid: int, signum: int) -> None:
        self.calls.append(("signal", pgid, signum))

    def kill_tree(self, name: str, run: int, pgid: int) -> None:
        self.calls.append(("kill", name, run))

    def probe(self, name: str, run: int, probe: Probe, checks: tuple[HttpCheck, ...], timeout: float) -> None:
        self.probes.append(ProbeCall(name, run, probe, checks, self.clock))

    def collect_npu(self, targets: tuple[Any, ...], timeout: float) -> None:
        self.calls.append(("collect_npu", len(targets), timeout))

    def run_hooks(self, deadline: float) -> None:
        self.calls.append(("hooks", deadline))

    def start_guardian(self) -> int:
        self.next_pid += 1
        self.calls.append(("guardian", self.next_pid))
        return self.next_pid

    def track(self, groups: dict[str, int]) -> None:
        self.tracked = dict(groups)

    def exists(self, path: Path) -> bool:
        return path in self.files


def emfile() -> OSError:
    return OSError(errno.EMFILE, "Too many open files")


class Stack:
    """An engine over the MindIE specs of a 4-Server plan (server-1/2 prefill, 3/4 decode)."""

    def __init__(self, strict: bool = True, **settings: Any) -> None:
        self.settings = Settings(**{**FAST, **settings})
        self.plan = make_plan(
            factories.facts(factories.chips(8, per_node=4)), factories.inputs(), self.settings, factories.FakeChecker()
        )
        self.specs = build_specs(self.plan, self.settings, {"PATH": "/usr/bin"}, Path("/out"), Path("/state"))
        self.fx = FakeEffects()
        self.engine = Engine(
            self.specs,
            self.settings,
            self.fx,
            MindieRules(
                self.plan, self.settings.controller_stall_seconds, self.settings.coordinator_quarantine_seconds
            ),
            strict,
        )
        self.engine.begin()

    # --- driving ----------------------------------------------------------------------------

    def tick(self) -> None:
        self.engine.tick()

    def advance(self, seconds: float) -> None:
        self.fx.clock += seconds
        self.engine.tick()

    def run_for(self, seconds: float) -> None:
        """Drive the engine as the real loop does: wake only at the moments it names."""
        end = self.fx.clock + seconds
        for _ in range(100_000):
            wake = self.engine.next_wakeup()
            if wake > end:
                self.fx.clock = end
                self.engine.tick()
                return
            self.fx.clock = max(self.fx.clock, wake)
            self.engine.tick()
        raise AssertionError("the engine asked to be woken at once, again and again: the loop would spin")

    def post(self, event: Event, tick: bool = True) -> None:
        self.engine.handle(event)
        if tick:
            self.engine.tick()

    def child(self, name: str) -> Any:
        return self.engine.children[name]

    def state(self, name: str) -> ProcState:
        return self.engine.children[name].state

    def pending(self, name: str, probe: Probe) -> ProbeCall | None:
        calls = [c for c in self.fx.probes if c.name == name and c.probe is probe and not c.answered]
        return calls[-1] if calls else None

    def answer(
        self, name: str, probe: Probe, ok: bool = True, body: Any = None, tick: bool = True, status: int | None = None
    ) -> None:
        call = self.pending(name, probe)
        assert call is not None, f"no {probe.value} probe of {name} is waiting for an answer"
        call.answered = True
        code = status if status is not None else (200 if ok else 503)
        result = Result(ok, f"{call.checks[-1].path} answered {code}", body)
        self.post(Answered(name, call.run, probe, result, call.sent), tick)

    def answer_all(self, probe: Probe, ok: bool = True) -> None:
        """Answer every probe of this kind still waiting, until none is left."""
        for _ in range(3):
            for name in self.engine.children:
                if self.pending(name, probe) is not None:
                    self.answer(name, probe, ok)

    def exit(self, name: str, code: int = -signal.SIGKILL, tick: bool = True) -> None:
        pid = self.child(name).pid
        assert pid is not None, f"{name} has no process"
        self.post(Exited(pid, code), tick)

    def gone(self, name: str, tick: bool = True) -> None:
        self.post(GroupGone(name, self.child(name).run), tick)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.post(Signal(signum))

    def drain(self) -> None:
        self.post(Drain("through the control socket"))

    def restart(self, name: str) -> None:
        self.post(Restart(name))

    def hooks_done(self) -> None:
        self.post(HooksDone())

    # --- scenarios' building blocks -----------------------------------------------------------

    @property
    def servers(self) -> list[str]:
        return [spec.name for spec in self.specs if spec.server is not None]

    def up(self, name: str) -> None:
        self.answer(name, Probe.UP)

    def bring_up(self) -> None:
        """Servers, Coordinator, Controller started and up; one readiness round: service ready."""
        self.tick()
        for name in self.servers:
            self.up(name)
        self.up("coordinator")
        self.up("controller")
        self.readiness_round()
        assert self.engine.phase.value == "ready", self.fx.logs[-5:]

    def readiness_round(self, ok: bool = True) -> None:
        """Answer readiness probes (the Servers first, then the Coordinator) until no new one comes."""
        for _ in range(4):
            if not any(self.pending(name, Probe.READY) for name in [*self.servers, "coordinator"]):
                self.engine.health.next_round = self.fx.clock
                self.tick()
            for name in [*self.servers, "coordinator"]:
                if self.pending(name, Probe.READY) is None:
                    continue
                self.answer(name, Probe.READY, ok)
                if name != "coordinator" and self.pending(name, Probe.LIVE) is not None:
                    role = self.child(name).spec.server.role.value
                    self.answer(name, Probe.LIVE, body={"service": {"roleStatus": "RoleReady", "currentRole": role}})
            if self.engine.phase.value == "ready" or not ok:
                return

    def spawned(self) -> list[str]:
        return [call[1] for call in self.fx.calls if call[0] == "spawn"]

    def killed(self) -> list[str]:
        return [call[1] for call in self.fx.calls if call[0] == "kill"]

    def signalled(self, signum: int) -> list[str]:
        by_pid = {}
        for call in self.fx.calls:
            if call[0] == "spawn":
                by_pid[call[2]] = call[1]
        return [
            by_pid.get(call[1], str(call[1])) for call in self.fx.calls if call[0] == "signal" and call[2] == signum
        ]
