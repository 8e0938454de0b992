"""The simulated host tools without a Python start, for the questions whose answer is fixed.

A simulated npu-smi run used to start an interpreter (some 50 ms of CPU); discovery asks up to 51
questions on an A3, so the simulator, not supervisor_pd, was what a discovery benchmark measured.
When the host is built, the answer (stdout, stderr, exit code) to every question that depends on
the profile alone is computed by the same code the Python tool runs (`hosttools.answer`), and the
bin wrapper, a /bin/sh script, prints it with the shell's own printf: no process is started.

The Python tool still answers everything else: an argv not in the list; any run while a fault
variable is set (`SUPERVISOR_PD_SIM_NPU_SMI`, `SUPERVISOR_PD_SIM_HCCN_FAIL`,
`SUPERVISOR_PD_SIM_HOST_FAULTS`, even empty) or the fault file `run/host_faults` exists; and
`npu-smi info` once any device lock file exists (`run/davinci<N>.lock`, made by a simulated Server
that took the chip): its HBM figures follow the locks that are held, which a shell cannot see.
tests/unit/simulator/test_fasttools.py checks both paths print the same bytes for every
precomputed argv of every profile.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from supervisor_pd.simulator.hostfaults import ENV, FILE
from supervisor_pd.simulator.hosttools import answer
from supervisor_pd.simulator.profiles import HostProfile

FAULT_VARIABLES = ("SUPERVISOR_PD_SIM_NPU_SMI", "SUPERVISOR_PD_SIM_HCCN_FAIL", ENV)
# Answers that hold only while no simulated Server has taken a chip: the summary's HBM figures.
IDLE_ONLY = {("npu-smi", ("info",))}


def known_argvs(tool: str, profile: HostProfile) -> list[list[str]]:
    """The questions answered without Python: those discovery and the health checks ask, whose
    answer depends on the profile alone."""
    chips = profile.chips
    if tool == "npu-smi":
        argvs = [["info"], ["info", "-l"], ["info", "-L"], ["info", "-m"]]
        for kind in ("board", "spod-info", "health"):
            argvs += [["info", "-t", kind, "-i", str(c.npu_id), "-c", str(c.chip_id)] for c in chips]
        return argvs
    if tool == "hccn_tool":
        return [["-i", str(c.phy_id), query, "-g"] for query in ("-ip", "-link", "-net_health") for c in chips]
    if tool == "lspci":
        return [[]] + [["-s", bdf, "-vvv"] for c in chips for bdf in (c.bdf, c.bdf[5:])]
    return []


def fast_wrapper(tool: str, profile: HostProfile, root: Path, fallback: str) -> str:
    """A /bin/sh bin wrapper for `tool`: the precomputed answer for a known argv when no fault is
    set, else `fallback` (a wrapper script that runs the Python tool; its shebang is dropped)."""
    by_count: dict[int, list[str]] = {}
    for argv in known_argvs(tool, profile):
        code, out, err = answer(tool, argv, profile, root)
        tests = [f'[ "${index}" = {shlex.quote(arg)} ]' for index, arg in enumerate(argv, 1)]
        tests += ["! _busy"] if (tool, tuple(argv)) in IDLE_ONLY else []
        test = " && ".join(tests) or ":"
        prints = [f"printf '%s' {shlex.quote(out)}"] if out else []
        prints += [f"printf '%s' {shlex.quote(err)} >&2"] if err else []
        by_count.setdefault(len(argv), []).append(f"    if {test}; then {'; '.join([*prints, f'exit {code}'])}; fi")
    faults = "".join(f"${{{name}+x}}" for name in FAULT_VARIABLES)
    locks = shlex.quote(str(root / "run")) + "/davinci*.lock"  # the quoted folder, the glob unquoted
    lines = [
        "#!/bin/sh",
        f"# The simulated {tool} of {profile.name}: precomputed answers (supervisor_pd/simulator/fasttools.py),",
        "# else the Python tool.",
        f'_busy() {{ for lock in {locks}; do [ -e "$lock" ] && return 0; done; return 1; }}',
        f'if [ -z "{faults}" ] && [ ! -e {shlex.quote(str(root / FILE))} ]; then',
        "  case $# in",
    ]
    for count, tests in sorted(by_count.items()):
        lines += [f"  {count})", *tests, "    ;;"]
    lines += ["  esac", "fi"]
    body = fallback.split("\n", 1)[1] if fallback.startswith("#!") else fallback
    return "\n".join(lines) + "\n" + body
