"""The simulator's own knobs, read from the environment of each simulated process.

They are not MindIE settings: they scale MindIE's timers for tests, set simulated model and
token timings, and inject faults. Standard library only, so a simulated Server stays small.

SUPERVISOR_PD_SIM_TIME_SCALE       multiplies MindIE's own timers (Controller waits, Server
                                   shutdown path, /dresult keep-alive); default 1.0
SUPERVISOR_PD_SIM_STARTUP_SECONDS  Server start to "Daemon start success!"; default 0.5
SUPERVISOR_PD_SIM_MODEL_LOAD_SECONDS  model load after the first role request; default 3.0
SUPERVISOR_PD_SIM_LINK_SECONDS     P<->D link set-up after a role request; default 1.0
SUPERVISOR_PD_SIM_TTFT_MS          prefill time per request; default 50
SUPERVISOR_PD_SIM_TPOT_MS          decode time per output token; default 20
SUPERVISOR_PD_SIM_MAX_TOKENS       output length when a request names none; default 16
SUPERVISOR_PD_SIM_ABORT_ON_EXIT    1 (default): a stopped Server ends with SIGABRT like the real
                                   daemon; 0: it exits 0
SUPERVISOR_PD_SIM_FAULTS           faults, see below
SUPERVISOR_PD_SIM_PORT_CHECK       mindie (default): a Server's start checks its ports as MindIE's
                                   does, without SO_REUSEADDR, so a connection of its last run
                                   blocks a restart for up to a minute; reuseaddr: it forgives
                                   those (the tests' choice, with SUPERVISOR_PD_PORT_WAIT_SECONDS=0)
SUPERVISOR_PD_SIM_SLOW_SECONDS     how late a Server answers management GETs after SIGUSR1
                                   (a test's way to make a running Server slow; a second
                                   SIGUSR1 makes it prompt again); default 1.0
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _float(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    try:
        value = float(text) if text.strip() else default
    except ValueError:
        return default
    return max(0.0, value)


@dataclass(frozen=True)
class Knobs:
    time_scale: float = 1.0
    startup: float = 0.5
    model_load: float = 3.0
    link: float = 1.0
    ttft: float = 0.05
    tpot: float = 0.02
    max_tokens: int = 16
    abort_on_exit: bool = True
    slow: float = 1.0
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def scaled(self, seconds: float) -> float:
        """One of MindIE's own waits, scaled for tests."""
        return seconds * self.time_scale

    def fault(self, target: str, kind: str) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.applies_to(target):
                return fault
        return None


@dataclass(frozen=True)
class Fault:
    """`target:kind[=value][@once]`, for example `server-2:crash_after=3@once`.

    Targets: `server-<n>` (n from config<n>.json), `server-*`, `controller`, `coordinator`.
    Kinds: exit=CODE (exit at start), crash_after=S (the whole process group dies by SIGKILL),
    hang_after=S (the process stops itself: SIGSTOP), slow_health=S (health and status answers
    take S seconds), never_ready (the model never finishes loading), load_fail (NPU
    initialisation fails after the role request), orphan=S (a grandchild that lives S seconds
    is left in the process group), retry_requests=N (a decode instance answers its first N
    hand-offs with a `retry:` frame), stall_after=S (Controller: its scheduler stops, its probe
    server keeps answering). `@once`: only the first start of that process is affected.
    """

    target: str
    kind: str
    value: float | None
    once: bool

    def applies_to(self, target: str) -> bool:
        if self.target == target:
            return True
        return self.target.endswith("-*") and target.startswith(self.target[:-1])


def parse_faults(text: str) -> tuple[Fault, ...]:
    faults = []
    for raw in text.replace(",", ";").split(";"):
        entry = raw.strip()
        if not entry or ":" not in entry:
            continue
        target, spec = entry.split(":", 1)
        once = spec.endswith("@once")
        spec = spec.removesuffix("@once")
        kind, _, value = spec.partition("=")
        try:
            number = float(value) if value else None
        except ValueError:
            number = None
        faults.append(Fault(target.strip(), kind.strip(), number, once))
    return tuple(faults)


def load_knobs() -> Knobs:
    return Knobs(
        time_scale=_float("SUPERVISOR_PD_SIM_TIME_SCALE", 1.0),
        startup=_float("SUPERVISOR_PD_SIM_STARTUP_SECONDS", 0.5),
        model_load=_float("SUPERVISOR_PD_SIM_MODEL_LOAD_SECONDS", 3.0),
        link=_float("SUPERVISOR_PD_SIM_LINK_SECONDS", 1.0),
        ttft=_float("SUPERVISOR_PD_SIM_TTFT_MS", 50.0) / 1000,
        tpot=_float("SUPERVISOR_PD_SIM_TPOT_MS", 20.0) / 1000,
        max_tokens=max(1, int(_float("SUPERVISOR_PD_SIM_MAX_TOKENS", 16))),
        slow=_float("SUPERVISOR_PD_SIM_SLOW_SECONDS", 1.0),
        abort_on_exit=os.environ.get("SUPERVISOR_PD_SIM_ABORT_ON_EXIT", "1").strip() != "0",
        faults=parse_faults(os.environ.get("SUPERVISOR_PD_SIM_FAULTS", "")),
    )


def run_dir() -> Path:
    """Where simulated processes keep device locks and fault markers."""
    host = os.environ.get("SUPERVISOR_PD_SIM_HOST")
    base = Path(host) / "run" if host else Path(f"/tmp/supervisor-pd-sim-{os.getuid()}")  # noqa: S108
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def first_time(target: str, fault: Fault) -> bool:
    """For `@once` faults: True the first time this process target meets the fault."""
    if not fault.once:
        return True
    marker = run_dir() / f"fault-{target}-{fault.kind}.done"
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True
