"""Faults of the simulated host tools, per physical chip id or per tool.

Read on every tool run, from `$SUPERVISOR_PD_SIM_HOST/run/host_faults` when that file exists (so a
test can change them while a stack is serving), else from `SUPERVISOR_PD_SIM_HOST_FAULTS`. Same
syntax in both: comma-separated items (newlines count as commas)

  <phy>:unhealthy      npu-smi reports the chip Alarm, with an error code (`-t health`, summary)
  <phy>:link-down      `hccn_tool -i <phy> -link -g` prints `link status: DOWN`
  <phy>:net-unhealthy  `hccn_tool -i <phy> -net_health -g` prints `net health status: Fault`
  npu-smi:hang         every npu-smi run sleeps far longer than any caller's timeout
  npu-smi:garbage      every npu-smi run prints text with no parsable table
  hccn_tool:hang       as npu-smi:hang, for hccn_tool
  hccn_tool:garbage    as npu-smi:garbage, for hccn_tool

Unknown items are named on stderr and ignored. `write_host_faults` replaces the file atomically
(os.replace), so a tool run reads either the old items or the new ones, never half of either.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ENV = "SUPERVISOR_PD_SIM_HOST_FAULTS"
FILE = "run/host_faults"
CHIP_FAULTS = ("unhealthy", "link-down", "net-unhealthy")
TOOL_FAULTS = ("hang", "garbage")
TOOLS = ("npu-smi", "hccn_tool")
# Far longer than any caller's timeout (supervisor_pd's tool_timeout is 10 s by default).
HANG_SECONDS = 3600.0


@dataclass(frozen=True)
class HostFaults:
    chips: dict[int, frozenset[str]] = field(default_factory=dict)
    tools: dict[str, frozenset[str]] = field(default_factory=dict)

    def chip(self, phy: int, kind: str) -> bool:
        return kind in self.chips.get(phy, frozenset())

    def tool(self, name: str, kind: str) -> bool:
        return kind in self.tools.get(name, frozenset())


def parse_host_faults(text: str, warn: bool = True) -> HostFaults:
    chips: dict[int, set[str]] = {}
    tools: dict[str, set[str]] = {}
    for item in (part.strip() for part in re.split(r"[,\n]", text)):
        if not item:
            continue
        target, _, kind = item.partition(":")
        if target.isdigit() and kind in CHIP_FAULTS:
            chips.setdefault(int(target), set()).add(kind)
        elif target in TOOLS and kind in TOOL_FAULTS:
            tools.setdefault(target, set()).add(kind)
        elif warn:
            sys.stderr.write(f"simulated host tool: ignoring unknown fault {item!r}\n")
    return HostFaults(
        chips={phy: frozenset(kinds) for phy, kinds in chips.items()},
        tools={name: frozenset(kinds) for name, kinds in tools.items()},
    )


def fault_text(root: Path | str | None, environ: dict[str, str] | None = None) -> str:
    """The fault items in force: the file's when it exists, else the variable's."""
    env = os.environ if environ is None else environ
    if root:
        try:
            return (Path(root) / FILE).read_text()
        except FileNotFoundError:
            pass
    return env.get(ENV, "")


def load_host_faults(root: Path | str | None) -> HostFaults:
    return parse_host_faults(fault_text(root))


def write_host_faults(root: Path, items: Iterable[str]) -> Path:
    """Replace the host's fault file atomically with `items`; returns its path."""
    path = root / FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, staging = tempfile.mkstemp(prefix=".host_faults.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(",".join(items) + "\n")
        Path(staging).replace(path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def clear_host_faults(root: Path) -> None:
    """Remove the fault file: the variable's items are in force again."""
    (root / FILE).unlink(missing_ok=True)
