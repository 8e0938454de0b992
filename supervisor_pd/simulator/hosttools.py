"""Simulated npu-smi, hccn_tool and lspci: same arguments, same output format (reference §7).

Run as ``python -m supervisor_pd.simulator.hosttools <tool> [args...]`` by the wrappers in the
simulated host's bin folder. The host is read from ``$SUPERVISOR_PD_SIM_HOST/simhost.json``.

Faults for tests, through the environment:
  SUPERVISOR_PD_SIM_NPU_SMI=fail|garbage|empty   npu-smi fails, prints nonsense, or lists no NPU
  SUPERVISOR_PD_SIM_HCCN_FAIL=3,5                hccn_tool fails for these physical ids
and per chip or per tool, from the environment or a file read on every run (hostfaults.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import TextIO

from supervisor_pd.simulator.hostfaults import HANG_SECONDS, HostFaults, load_host_faults
from supervisor_pd.simulator.npusummary import ChipLine, render_health, render_summary
from supervisor_pd.simulator.profiles import HostProfile, SimChip

_PAD = 31


def _line(key: str, value: object) -> str:
    return f"\t{key:<{_PAD}}: {value}"


@dataclass
class Host:
    """What one tool run sees: the host, its environment and faults, where it prints."""

    profile: HostProfile
    root: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    faults: HostFaults = field(default_factory=HostFaults)
    out: TextIO = field(default_factory=StringIO)
    err: TextIO = field(default_factory=StringIO)

    def print(self, text: str) -> int:
        self.out.write(text)
        return 0

    def fail(self, message: str, code: int = 255) -> int:
        # npu-smi and hccn_tool print the reason on stdout.
        self.out.write(message + "\n")
        return code


def _this_host() -> Host:
    root = os.environ.get("SUPERVISOR_PD_SIM_HOST")
    if not root:
        sys.stderr.write("simulated host tool: SUPERVISOR_PD_SIM_HOST is not set\n")
        raise SystemExit(127)
    profile = HostProfile.from_json(json.loads((Path(root) / "simhost.json").read_text()))
    return Host(profile, Path(root), os.environ, load_host_faults(root), sys.stdout, sys.stderr)


def answer(tool: str, args: list[str], profile: HostProfile, root: Path) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `tool args` on a host with no fault and no fault variable
    (what the bin wrappers print without starting Python, fasttools.py)."""
    out, err = StringIO(), StringIO()
    code = TOOLS[tool](Host(profile, root, out=out, err=err), args)
    return code, out.getvalue(), err.getvalue()


def _tool_fault(host: Host, tool: str) -> int | None:
    """The exit code when a tool-wide fault decides the run, else None."""
    if host.faults.tool(tool, "hang"):
        time.sleep(HANG_SECONDS)
        return 0
    if host.faults.tool(tool, "garbage"):
        return host.print("\x1b[31m*** segfault in libdcmi ***\x1b[0m\nNPU ID : zero\nstatus ?? ~~\n")
    return None


# --- npu-smi ----------------------------------------------------------------------------


def npu_smi(host: Host, args: list[str]) -> int:
    profile, faults = host.profile, host.faults
    decided = _tool_fault(host, "npu-smi")
    if decided is not None:
        return decided
    mode = host.environ.get("SUPERVISOR_PD_SIM_NPU_SMI", "ok")
    if mode == "fail":
        host.err.write("DrvMngGetConsoleLogLevel failed. (ret=4)\n")
        return host.fail("dcmi model initialized failed, because the device is used. ret is -8020", 255)
    if mode == "garbage":
        return host.print("\x1b[31m*** segfault in libdcmi ***\x1b[0m\nNPU ID : zero\n")
    chips = [] if mode == "empty" else list(profile.chips)
    if args in (["info", "-l"], ["info", "-L"]):
        return host.print(_list(profile, chips))
    if args == ["info", "-m"]:
        return host.print(_map(profile, chips))
    if args == ["info"]:
        return host.print(_summary(host, chips))
    if len(args) >= 4 and args[:2] == ["info", "-t"]:
        options = dict(zip(args[3::2], args[4::2], strict=False))
        kind = args[2]
        chip = _find(chips, options.get("-i"), options.get("-c", "0"))
        if chip is None:
            return host.fail("The device id is invalid. Please use npu-smi info -l to check the device id.", 255)
        if kind == "board":
            return host.print(_board(profile, chip))
        if kind == "health":
            return host.print(_health(chip, faults))
        if kind == "spod-info":
            if profile.super_pod_id is None:
                return host.fail("This device does not support querying spod-info.", 255)
            return host.print(_spod(profile, chip))
    host.err.write("Usage: npu-smi info [-l | -m | -t <type> -i <id> [-c <chip_id>]]\n")
    return 1


def _find(chips: list[SimChip], npu: str | None, chip_id: str | None) -> SimChip | None:
    for chip in chips:
        if str(chip.npu_id) == npu and str(chip.chip_id) == chip_id:
            return chip
    return None


def _list(profile: HostProfile, chips: list[SimChip]) -> str:
    npus = sorted({chip.npu_id for chip in chips})
    lines = [_line(profile.count_key, len(npus)), ""]
    for npu in npus:
        count = sum(1 for chip in chips if chip.npu_id == npu)
        lines += [
            _line("NPU ID", npu),
            _line("Product Name", profile.product_name),
            _line("Serial Number", f"102{npu:09d}"),
            _line("Chip Count", count),
            "",
        ]
    return "\n".join(lines) + "\n"


def _map(profile: HostProfile, chips: list[SimChip]) -> str:
    columns = (
        ["NPU ID", "Chip ID", "Chip Logic ID"] + (["Chip Phy-ID"] if profile.phy_id_column else []) + ["Chip Name"]
    )
    rows = ["\t" + "".join(f"{column:<{_PAD}}" for column in columns).rstrip()]
    for npu in sorted({chip.npu_id for chip in chips}):
        own = sorted((chip for chip in chips if chip.npu_id == npu), key=lambda chip: chip.chip_id)
        for chip in own:
            cells = [chip.npu_id, chip.chip_id, chip.logic_id]
            cells += [chip.phy_id] if profile.phy_id_column else []
            rows.append("\t" + "".join(f"{cell!s:<{_PAD}}" for cell in cells) + profile.chip_name)
        mcu = [npu, len(own), "-"] + (["-"] if profile.phy_id_column else [])
        rows.append("\t" + "".join(f"{cell!s:<{_PAD}}" for cell in mcu) + "Mcu")
    return "\n".join(rows) + "\n"


def _board(profile: HostProfile, chip: SimChip) -> str:
    per_npu = sum(1 for other in profile.chips if other.npu_id == chip.npu_id)
    pairs = [
        ("NPU ID", chip.npu_id),
        ("Chip ID", chip.chip_id),
        ("Chip Type", "Ascend"),
        ("Chip Name", profile.board_chip_name),
        ("Chip Version", "V1"),
        ("Board ID", "0x02"),
        ("PCB ID", "NA"),
        ("BOM ID", "1"),
        ("PCIe Bus Info", chip.bdf.upper()),
        ("Slot ID", chip.npu_id),
        ("Class ID", "NA"),
        ("PCI Vendor ID", "0x19E5"),
        ("PCI Device ID", "0x" + profile.pci_device.upper()),
        ("PCI Subsystem Vendor ID", "0x0200"),
        ("PCI Subsystem Device ID", "0x0100"),
        ("Chip Count", per_npu),
        ("Firmware Version", "7.1.0.6.220"),
    ]
    return "\n".join(_line(key, value) for key, value in pairs) + "\n"


def _spod(profile: HostProfile, chip: SimChip) -> str:
    pairs = [
        ("SDID", chip.sdid if chip.sdid is not None else 0),
        ("Super Pod Size", 48),
        ("Super Pod ID", profile.super_pod_id),
        ("Server Index", profile.server_index if profile.server_index is not None else 0),
    ]
    return "\n".join(_line(key, value) for key, value in pairs) + "\n"


def _summary(host: Host, chips: list[SimChip]) -> str:
    profile, faults = host.profile, host.faults
    busy = _busy_devices(host.root)
    lines = []
    for chip in chips:
        loaded = chip.phy_id in busy
        lines.append(
            ChipLine(
                npu_id=chip.npu_id,
                chip_id=chip.chip_id,
                phy_id=chip.phy_id,
                name=profile.board_chip_name,
                health="Alarm" if faults.chip(chip.phy_id, "unhealthy") else "OK",
                # A3: the card's power is on its first chip's row, the second prints "-".
                power="-" if chip.chip_id and profile.phy_id_column else f"{93.6 + chip.phy_id * 1.3:.1f}",
                temp=str(37 + chip.phy_id % 5 + (4 if loaded else 0)),
                aicore="0",
                hbm_used=(58000 if loaded else 3161) + chip.phy_id * 7,
                hbm_total=65536,
                bus=chip.bdf.upper(),
            )
        )
    return render_summary(profile.npu_smi_version, lines, per_chip=profile.phy_id_column)


def _health(chip: SimChip, faults: HostFaults) -> str:
    if faults.chip(chip.phy_id, "unhealthy"):
        return render_health("Alarm", "80E18005", "HBM multi-bit ECC error, device isolated")
    return render_health("OK", "NA", "NA")


def _busy_devices(root: Path) -> set[int]:
    """Physical ids whose device lock (run/davinci<N>.lock) a simulated Server holds, read from
    /proc/locks so that looking never takes the lock a starting Server wants."""
    run = root / "run"
    try:
        held = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    inodes = set()
    for line in held:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK":
            inodes.add(fields[5])
    busy = set()
    for path in run.glob("davinci*.lock"):
        try:
            info = path.stat()
        except OSError:
            continue
        key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        if key in inodes and path.stem[len("davinci") :].isdigit():
            busy.add(int(path.stem[len("davinci") :]))
    return busy


# --- hccn_tool --------------------------------------------------------------------------


HCCN_QUERIES = {"-ip": "ip address", "-link": "link status", "-net_health": "net health status"}


def hccn_tool(host: Host, args: list[str]) -> int:
    profile, faults = host.profile, host.faults
    decided = _tool_fault(host, "hccn_tool")
    if decided is not None:
        return decided
    if len(args) != 4 or args[0] != "-i" or args[2] not in HCCN_QUERIES or args[3] != "-g" or not args[1].isdigit():
        host.err.write("Usage: hccn_tool -i <device_id> {-ip|-link|-net_health} -g\n")
        return 1
    phy, query = int(args[1]), args[2]
    failing = {int(x) for x in host.environ.get("SUPERVISOR_PD_SIM_HCCN_FAIL", "").split(",") if x.strip().isdigit()}
    chip = next((chip for chip in profile.chips if chip.phy_id == phy), None)
    if chip is None:
        return host.fail(f"Device {phy} does not exist.", 255)
    if phy in failing or (query == "-ip" and chip.device_ip is None):
        return host.fail(f"Get {HCCN_QUERIES[query]} failed, device id: {phy}, ret: -1", 255)
    if query == "-link":
        return host.print(f"link status: {'DOWN' if faults.chip(phy, 'link-down') else 'UP'}\n")
    if query == "-net_health":
        return host.print(f"net health status: {'Fault' if faults.chip(phy, 'net-unhealthy') else 'Success'}\n")
    return host.print(f"ipaddr:{chip.device_ip}\nnetmask:255.255.0.0\n")


# --- lspci ------------------------------------------------------------------------------


def lspci(host: Host, args: list[str]) -> int:
    profile = host.profile
    if not args:
        lines = [
            "00:00.0 PCI bridge: Huawei Technologies Co., Ltd. HiSilicon PCIe Root Port with Gen4 (rev 21)",
            "7d:00.0 Ethernet controller: Huawei Technologies Co., Ltd. HNS GE/10GE/25GE RDMA Network Controller"
            " (rev 21)",
        ]
        for chip in profile.chips:
            lines.append(
                f"{chip.bdf[5:]} Processing accelerators: Huawei Technologies Co., Ltd. "
                f"Device {profile.pci_device} (rev 20)"
            )
        return host.print("\n".join(lines) + "\n")
    if len(args) >= 2 and args[0] == "-s":
        wanted = args[1].lower()
        for chip in profile.chips:
            if wanted in (chip.bdf, chip.bdf[5:]):
                return host.print(
                    f"{chip.bdf[5:]} Processing accelerators: Huawei Technologies Co., Ltd. "
                    f"Device {profile.pci_device} (rev 20)\n"
                    "\tSubsystem: Huawei Technologies Co., Ltd. Device 0100\n"
                    "\tControl: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR-\n"
                    f"\tNUMA node: {chip.numa_node}\n"
                    "\tKernel driver in use: devdrv_device_driver\n"
                )
        return 0
    host.err.write("lspci: simulated lspci supports no options but -s BDF [-vvv]\n")
    return 1


TOOLS = {"npu-smi": npu_smi, "hccn_tool": hccn_tool, "lspci": lspci}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in TOOLS:
        sys.stderr.write(f"usage: hosttools {{{','.join(TOOLS)}}} [args...]\n")
        return 2
    return TOOLS[argv[0]](_this_host(), argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
