"""The text of `npu-smi info` (the summary table) and `npu-smi info -t health`, from values.

Layouts as real npu-smi prints them (sources in README.md, "Health tools"): A2 has one NPU row per
card and a chip row per chip; A3 (`Chip  Phy-ID` header) gives every chip its own NPU row and
chip row, chips of one card separated by a plain rule, the second chip's power printed `-`.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 96
FULL_RULE = "+" + "-" * WIDTH + "+"
COLUMN_RULE = "+" + "-" * 27 + "+" + "-" * 15 + "+" + "-" * 52 + "+"
DOUBLE_RULE = "+" + "=" * 27 + "+" + "=" * 15 + "+" + "=" * 52 + "+"
# Severity order of npu-smi's health words; a card shows its worst chip.
SEVERITY = ("OK", "Warning", "Alarm", "Critical", "UNKNOWN")


@dataclass(frozen=True)
class ChipLine:
    npu_id: int
    chip_id: int
    phy_id: int
    name: str
    health: str
    power: str  # as printed: "93.6", "-"
    temp: str
    aicore: str
    hbm_used: int
    hbm_total: int
    bus: str  # upper case, as printed: 0000:C1:00.0


def _usage(used: int, total: int) -> str:
    # "3382 / 65536", and "61609/ 65536" when the used figure fills its five places.
    return f"{used:<5}/ {total}"


def _row(first: str, second: str, third: str) -> str:
    return f"| {first:<26}| {second:<14}| {third:<51}|"


def _npu_row(npu_id: int, name: str, health: str, power: str, temp: str) -> str:
    return _row(f"{npu_id:<6}{name}", health, f"{power:<12}{temp:<18}{_usage(0, 0)}")


def _chip_row(label: str, chip: ChipLine) -> str:
    return _row(label, chip.bus, f"{chip.aicore:<12}{_usage(0, 0):<18}{_usage(chip.hbm_used, chip.hbm_total)}")


def worst(healths: list[str]) -> str:
    return max(healths, key=lambda word: SEVERITY.index(word) if word in SEVERITY else len(SEVERITY))


def render_summary(version: str, chips: list[ChipLine], per_chip: bool) -> str:
    """The whole `npu-smi info` text. `per_chip`: the A3 layout (a Phy-ID column, a row pair per
    chip); else the A2 layout (one NPU row per card)."""
    chip_header = "Chip  Phy-ID" if per_chip else "Chip"
    out = [
        FULL_RULE,
        f"| npu-smi {version:<24} Version: {version:<53}|",
        COLUMN_RULE,
        _row("NPU   Name", "Health", "Power(W)    Temp(C)           Hugepages-Usage(page)"),
        _row(chip_header, "Bus-Id", "AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)"),
        DOUBLE_RULE,
    ]
    npus = sorted({chip.npu_id for chip in chips})
    for npu in npus:
        own = sorted((chip for chip in chips if chip.npu_id == npu), key=lambda chip: chip.chip_id)
        if per_chip:
            for index, chip in enumerate(own):
                if index:
                    out.append(FULL_RULE)
                out.append(_npu_row(npu, chip.name, chip.health, chip.power, chip.temp))
                out.append(_chip_row(f"{chip.chip_id:<6}{chip.phy_id}", chip))
        else:
            first = own[0]
            out.append(_npu_row(npu, first.name, worst([chip.health for chip in own]), first.power, first.temp))
            out += [_chip_row(str(chip.chip_id), chip) for chip in own]
        out.append(DOUBLE_RULE)
    out.append(COLUMN_RULE)
    out.append(_row("NPU     Chip", "Process id", "Process name             | Process memory(MB)"))
    out.append(DOUBLE_RULE)
    for npu in npus:
        out.append(f"| {'No running processes found in NPU ' + str(npu):<95}|")
        out.append(DOUBLE_RULE)
    return "\n".join(out) + "\n"


def render_health(status: str, code: str, information: str) -> str:
    """`npu-smi info -t health -i N -c M`: three key lines, `NA` where there is nothing."""
    return "".join(
        f"\t{key:<31}: {value}\n"
        for key, value in (
            ("Health Status", status),
            ("Error Code", code),
            ("Error Information", information),
        )
    )
