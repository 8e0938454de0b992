"""The preflight report: one line per check, pass/warn/fail, what was seen and what to do.

Exit codes of `supervisor-pd doctor`: 0 every check passed, 1 warnings only, 2 a failure that
would stop MindIE (the same code as any other bad input, so `run` refuses with it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from supervisor_pd.errors import ExitCode, InputError
from supervisor_pd.settings import env_name


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a check's outcome)
    WARN = "warn"
    FAIL = "fail"


# Every check, in the order they are printed; the ids are what SUPERVISOR_PD_DOCTOR_WARN names.
CHECKS: dict[str, str] = {
    "inputs": "configs, settings and host discovery",
    "npu": "driver and npu-smi",
    "chip-health": "NPU chip health",
    "device-ips": "device IPs",
    "links": "device network links",
    "weights": "model weights folder",
    "weights-config": "model weights config.json",
    "shm": "/dev/shm size",  # noqa: S108
    "open-files": "open-file limit",
    "jemalloc": "jemalloc",
    "log-disk": "free disk for logs",
}


@dataclass(frozen=True)
class Check:
    id: str
    status: Status
    seen: str  # the fact, as found
    fix: str = ""  # what to do; empty when nothing is to be done
    source: str = ""  # where the rule comes from (MindIE file:line or guide section)
    downgraded: bool = False  # a failure turned into a warning by SUPERVISOR_PD_DOCTOR_WARN

    @property
    def title(self) -> str:
        return CHECKS[self.id]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "seen": self.seen,
            "fix": self.fix,
            "source": self.source,
            "downgraded": self.downgraded,
        }


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status is Status.FAIL)

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status is Status.WARN)

    @property
    def exit_code(self) -> int:
        if self.failures:
            return int(ExitCode.BAD_INPUT)
        return 1 if self.warnings else 0

    def summary(self) -> str:
        passed = sum(1 for check in self.checks if check.status is Status.PASS)
        return f"{passed} passed, {len(self.warnings)} warning(s), {len(self.failures)} failure(s)"

    def text(self) -> str:
        lines = [f"preflight: {self.summary()}"]
        for check in self.checks:
            lines.append(f"  {check.status.value.upper():4}  {check.id:<15} {check.seen}")
            if check.fix and check.status is not Status.PASS:
                lines.append(f"{'':8}{'':<15} fix: {check.fix}")
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "fail" if self.failures else "warn" if self.warnings else "pass",
            "exit_code": self.exit_code,
            "checks": [check.as_json() for check in self.checks],
        }

    def refusal(self) -> InputError | None:
        """What `run` raises when a check failed: the first failure, as `doctor` words it."""
        if not self.failures:
            return None
        first = self.failures[0]
        more = f" (and {len(self.failures) - 1} more failed check(s): see `supervisor-pd doctor`)"
        return InputError(
            f"preflight check {first.id}",
            f"{first.seen}; {first.fix}" + (more if len(self.failures) > 1 else ""),
        )


def downgrade(checks: Iterable[Check], names: str) -> tuple[Check, ...]:
    """`checks` with the failures of the checks `names` lists (SUPERVISOR_PD_DOCTOR_WARN) as warnings."""
    wanted = {name.strip() for name in names.split(",") if name.strip()}
    unknown = sorted(wanted - set(CHECKS) - {"all"})
    if unknown:
        raise InputError(
            env_name("doctor_warn"), f"{unknown[0]!r} is not a check: use `all` or some of {', '.join(CHECKS)}"
        )
    everything = "all" in wanted
    return tuple(
        replace(check, status=Status.WARN, downgraded=True)
        if check.status is Status.FAIL and (everything or check.id in wanted)
        else check
        for check in checks
    )


def ordered(checks: Iterable[Check]) -> tuple[Check, ...]:
    order = {name: index for index, name in enumerate(CHECKS)}
    return tuple(sorted(checks, key=lambda check: order[check.id]))
