"""Simulated npu-smi, hccn_tool and lspci: same arguments, same output format (reference §7).

Run as ``python -m supervisor_pd.simulator.hosttools <tool> [args...]`` by the wrappers in the
simulated host's bin folder. The host is read from ``$SUPERVISOR_PD_SIM_HOST/simhost.json``.

Faults for tests, through the environment:
  SUPERVISOR_PD_SIM_NPU_SMI=fail|garbage|empty   npu-smi fails, prints nonsense, or lists no NPU
  SUPERVISOR_PD_SIM_HCCN_FAIL=3,5                hccn_tool fails for these physical ids
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from supervisor_pd.simulator.profiles import HostProfile, SimChip

_PAD = 31


def _line(key: str, value: object) -> str:
    return f"\t{key:<{_PAD}}: {value}"


def _load() -> HostProfile:
    root = os.environ.get("SUPERVISOR_PD_SIM_HOST")
    if not root:
        sys.stderr.write("simulated host tool: SUPERVISOR_PD_SIM_HOST is not set\n")
        raise SystemExit(127)
    data = json.loads((Path(root) / "simhost.json").read_text())
    return HostProfile.from_json(data)


def _fail(message: str, code: int = 255) -> int:
    sys.stdout.write(message + "\n")
    return code


# --- npu-smi ----------------------------------------------------------------------------


def npu_smi(args: list[str]) -> int:
    profile = _load()
    mode = os.environ.get("SUPERVISOR_PD_SIM_NPU_SMI", "ok")
    if mode == "fail":
        sys.stderr.write("DrvMngGetConsoleLogLevel failed. (ret=4)\n")
        return _fail("dcmi model initialized failed, because the device is used. ret is -8020", 255)
    if mode == "garbage":
        sys.stdout.write("\x1b[31m*** segfault in libdcmi ***\x1b[0m\nNPU ID : zero\n")
        return 0
    chips = [] if mode == "empty" else list(profile.chips)
    if args in (["info", "-l"], ["info", "-L"]):
        return _print(_list(profile, chips))
    if args == ["info", "-m"]:
        return _print(_map(profile, chips))
    if args == ["info"]:
        return _print(_summary(profile, chips))
    if len(args) >= 4 and args[:2] == ["info", "-t"]:
        options = dict(zip(args[3::2], args[4::2], strict=False))
        kind = args[2]
        chip = _find(chips, options.get("-i"), options.get("-c", "0"))
        if chip is None:
            return _fail("The device id is invalid. Please use npu-smi info -l to check the device id.", 255)
        if kind == "board":
            return _print(_board(profile, chip))
        if kind == "spod-info":
            if profile.super_pod_id is None:
                return _fail("This device does not support querying spod-info.", 255)
            return _print(_spod(profile, chip))
    sys.stderr.write("Usage: npu-smi info [-l | -m | -t <type> -i <id> [-c <chip_id>]]\n")
    return 1


def _print(text: str) -> int:
    sys.stdout.write(text)
    return 0


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


def _summary(profile: HostProfile, chips: list[SimChip]) -> str:
    rule = "+" + "-" * 27 + "+" + "-" * 15 + "+" + "-" * 52 + "+"
    double = "+" + "=" * 27 + "+" + "=" * 15 + "+" + "=" * 52 + "+"
    head = f"| npu-smi {profile.npu_smi_version:<24}Version: {profile.npu_smi_version:<54}|"
    out = [rule, head, rule]
    out.append(f"| {'NPU   Name':<26}| {'Health':<14}| {'Power(W)    Temp(C)           Hugepages-Usage(page)':<51}|")
    out.append(f"| {'Chip':<26}| {'Bus-Id':<14}| {'AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)':<51}|")
    out.append(double)
    for npu in sorted({chip.npu_id for chip in chips}):
        own = [chip for chip in chips if chip.npu_id == npu]
        out.append(
            f"| {npu:<6}{profile.board_chip_name:<20}| {'OK':<14}| {'93.6        37                0    / 0':<51}|"
        )
        for chip in own:
            out.append(
                f"| {chip.chip_id:<26}| {chip.bdf.upper():<14}| {'0           0    / 0          3161 / 65536':<51}|"
            )
        out.append(double)
    out.append(f"| {'NPU     Chip':<26}| {'Process id':<14}| {'Process name             | Process memory(MB)':<51}|")
    out.append(double)
    for npu in sorted({chip.npu_id for chip in chips}):
        out.append(f"| {'No running processes found in NPU ' + str(npu):<95}|")
        out.append(double)
    return "\n".join(out) + "\n"


# --- hccn_tool --------------------------------------------------------------------------


def hccn_tool(args: list[str]) -> int:
    profile = _load()
    if len(args) != 4 or args[0] != "-i" or args[2:] != ["-ip", "-g"] or not args[1].isdigit():
        sys.stderr.write("Usage: hccn_tool -i <device_id> -ip -g\n")
        return 1
    phy = int(args[1])
    failing = {int(x) for x in os.environ.get("SUPERVISOR_PD_SIM_HCCN_FAIL", "").split(",") if x.strip().isdigit()}
    chip = next((chip for chip in profile.chips if chip.phy_id == phy), None)
    if chip is None:
        return _fail(f"Device {phy} does not exist.", 255)
    if phy in failing or chip.device_ip is None:
        return _fail(f"Get ip address failed, device id: {phy}, ret: -1", 255)
    return _print(f"ipaddr:{chip.device_ip}\nnetmask:255.255.0.0\n")


# --- lspci ------------------------------------------------------------------------------


def lspci(args: list[str]) -> int:
    profile = _load()
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
        return _print("\n".join(lines) + "\n")
    if len(args) >= 2 and args[0] == "-s":
        wanted = args[1].lower()
        for chip in profile.chips:
            if wanted in (chip.bdf, chip.bdf[5:]):
                return _print(
                    f"{chip.bdf[5:]} Processing accelerators: Huawei Technologies Co., Ltd. "
                    f"Device {profile.pci_device} (rev 20)\n"
                    "\tSubsystem: Huawei Technologies Co., Ltd. Device 0100\n"
                    "\tControl: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR-\n"
                    f"\tNUMA node: {chip.numa_node}\n"
                    "\tKernel driver in use: devdrv_device_driver\n"
                )
        return 0
    sys.stderr.write("lspci: simulated lspci supports no options but -s BDF [-vvv]\n")
    return 1


TOOLS = {"npu-smi": npu_smi, "hccn_tool": hccn_tool, "lspci": lspci}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in TOOLS:
        sys.stderr.write(f"usage: hosttools {{{','.join(TOOLS)}}} [args...]\n")
        return 2
    return TOOLS[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
