"""Build a simulated host: a fixture tree (sysfs, /proc, /dev, /etc) and a bin folder.

The tree is what discovery reads through `SUPERVISOR_PD_HOST_ROOT`; the bin folder holds the
simulated tools under their real names and goes first on PATH.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from supervisor_pd.simulator.profiles import HostProfile

MARKER = "simhost.json"
HOST_TOOLS = ("npu-smi", "hccn_tool", "lspci")
# The MindIE executables under their real names. The launchers (mindie_llm_server,
# mindie_motor_*) exec the binary in the real install, so here they run the same module.
MINDIE_BINARIES = {
    "mindieservice_daemon": "supervisor_pd.simulator.server",
    "mindie_llm_server": "supervisor_pd.simulator.server",
    "ms_controller": "supervisor_pd.simulator.controller",
    "mindie_motor_controller": "supervisor_pd.simulator.controller",
    "ms_coordinator": "supervisor_pd.simulator.coordinator",
    "mindie_motor_coordinator": "supervisor_pd.simulator.coordinator",
}


@dataclass(frozen=True)
class SimHost:
    profile: HostProfile
    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with the simulated host switched on."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        env["SUPERVISOR_PD_HOST_ROOT"] = str(self.root)
        env["SUPERVISOR_PD_SIM_HOST"] = str(self.root)
        for key, value in self.profile.env.items():
            env.setdefault(key, value)
        return env


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def build_sim_host(profile: HostProfile, root: Path) -> SimHost:
    """(Re)create the simulated host for `profile` at `root` and return it."""
    if root.exists():
        if not (root / MARKER).is_file():
            raise FileExistsError(f"{root} exists and is not a simulated host; refusing to replace it")
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o750)
    _write(root / MARKER, json.dumps(profile.to_json(), indent=2))

    for node, cpus in profile.numa_cpus.items():
        _write(root / f"sys/devices/system/node/node{node}/cpulist", cpus + "\n")
    for chip in profile.chips:
        device = root / "sys/bus/pci/devices" / chip.bdf
        _write(device / "numa_node", f"{chip.numa_node}\n")
        _write(device / "vendor", "0x19e5\n")
        _write(device / "device", f"0x{profile.pci_device}\n")
        _write(root / f"dev/davinci{chip.phy_id}", "")
    for name in ("davinci_manager", "devmm_svm", "hisi_hdc"):
        _write(root / "dev" / name, "")

    if profile.cgroup == "v2":
        _write(root / "proc/self/cgroup", "0::/\n")
        _write(root / "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
        _write(root / "sys/fs/cgroup/cpuset.cpus.effective", profile.container_cpus + "\n")
    else:
        _write(root / "proc/self/cgroup", "6:cpuset:/\n5:cpu,cpuacct:/\n1:name=systemd:/\n")
        _write(root / "sys/fs/cgroup/cpuset/cpuset.cpus", profile.container_cpus + "\n")
        _write(root / "sys/fs/cgroup/cpuset/cpuset.effective_cpus", profile.container_cpus + "\n")
    # Ports are real ports on this machine, so the simulated host reports the real range.
    real_range = Path("/proc/sys/net/ipv4/ip_local_port_range")
    port_range = real_range.read_text() if real_range.exists() else "32768\t60999\n"
    _write(root / "proc/sys/net/ipv4/ip_local_port_range", port_range)
    if profile.hccn_conf:
        lines = [f"address_{phy}={ip}\nnetmask_{phy}=255.255.0.0" for phy, ip in sorted(profile.hccn_conf.items())]
        _write(root / "etc/hccn.conf", "\n".join(lines) + "\n")

    host = SimHost(profile, root)
    tools = [tool for tool in HOST_TOOLS if tool != "hccn_tool" or profile.hccn_tool]
    for tool in tools:
        write_wrapper(host.bin_dir / tool, "supervisor_pd.simulator.hosttools", [tool], root)
    for name, module in MINDIE_BINARIES.items():
        write_wrapper(host.bin_dir / name, module, [], root)
    (root / "run").mkdir(mode=0o700)
    return host


def write_wrapper(path: Path, module: str, args: list[str], root: Path) -> None:
    """A shell wrapper that runs `python -m module args... "$@"` with this interpreter."""
    command = " ".join(shlex.quote(part) for part in [sys.executable, "-m", module, *args])
    script = f'#!/bin/sh\nSUPERVISOR_PD_SIM_HOST={shlex.quote(str(root))} exec {command} "$@"\n'
    _write(path, script, mode=0o755)
