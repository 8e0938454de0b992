"""Everything the engine does to the world goes through one object (see supervisor's `options`).

The engine decides; an `Effects` object acts: it spawns, signals, kills what is left of a child,
sends HTTP probes, collects NPU health, runs the drain hooks, keeps the guardian informed and
tells the time. Results come back later as events (`Answered`, `GroupGone`, `NpuReport`,
`HooksDone`, `Exited`). `runtime/os_effects.py` does it for real; the unit tests drive the engine
with a fake that records the calls and a clock they move by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from supervisor_pd.runtime.events import Probe
from supervisor_pd.runtime.npucollect import ChipTarget
from supervisor_pd.runtime.spec import HttpCheck, ProcessSpec


class Effects(Protocol):
    # Whether spawn() binds a child to its CPU set (not on a simulated host).
    applies_cpus: bool

    def now(self) -> float:
        """Monotonic seconds: every deadline and readiness fact is on this clock."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for display only."""
        ...

    def log(self, message: str, level: str = "info") -> None:
        """`level`: info, warning or error (the JSON lines' `level`)."""
        ...

    def ports_in_use(self, ports: tuple[int, ...]) -> tuple[int, ...]:
        """Those of `ports` that cannot be bound on 0.0.0.0 without SO_REUSEADDR right now."""
        ...

    def spawn(self, spec: ProcessSpec, run: int) -> int:
        """Start `spec` in a process group of its own; returns its pid (= its group). Raises OSError.

        Its exit arrives as `Exited`."""
        ...

    def signal(self, pgid: int, signum: int) -> None:
        """Send `signum` to a process group (a group already gone is not an error)."""
        ...

    def kill_tree(self, name: str, run: int, pgid: int) -> None:
        """SIGKILL the group and every descendant of run `run` of `name`, including those that left
        the group; `GroupGone(name, run)` follows when nothing of it is left."""
        ...

    def probe(self, name: str, run: int, probe: Probe, checks: tuple[HttpCheck, ...], timeout: float) -> None:
        """GET each check in turn (all must answer 200); `Answered` follows with the last result."""
        ...

    def collect_npu(self, targets: tuple[ChipTarget, ...], timeout: float) -> None:
        """Run one NPU and link health collection (runtime/npucollect.py), off the loop, each tool
        within `timeout`; `NpuReport` follows, whatever the tools did."""
        ...

    def run_hooks(self, deadline: float) -> None:
        """Run the drain hooks (the HTTP port's own drain) until `deadline`; `HooksDone` follows."""
        ...

    def start_guardian(self) -> int:
        """Start the guardian that kills our children if we die; returns its pid. Raises OSError."""
        ...

    def track(self, groups: dict[str, int]) -> None:
        """The process groups alive now: recorded for a successor and handed to the guardian."""
        ...

    def exists(self, path: Path) -> bool: ...
