"""Parsers for the NPU health tools: `npu-smi info` (the summary table), `npu-smi info -t health`,
`hccn_tool -link -g` and `hccn_tool -net_health -g`. Pure functions of text, plus the argv that
produces each text. The formats and their sources are in supervisor_pd/simulator/README.md.

A2 (910B) summary: one NPU row per card (name, health, power, temperature), then one row per chip
(chip id, bus id, AICore, memory, HBM). A3 (910C, "Ascend910"): each card has two chips, and each
chip has its own NPU row and its own chip row (`Chip  Phy-ID` header); the second chip's power is
`-`, the card's power being on the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from supervisor_pd.platform.npusmi import ParseError, normalise_bdf

__all__ = [
    "HEALTHY",
    "ChipReading",
    "HealthDetail",
    "ParseError",
    "health_argv",
    "link_argv",
    "net_health_argv",
    "parse_health",
    "parse_link",
    "parse_net_health",
    "parse_summary",
    "summary_argv",
]

HEALTHY = "OK"
# npu-smi's words for a value it cannot give (the A3 second chip's power is "-").
_ABSENT = {"-", "NA", "N/A", ""}
_COLON = r"\s*[:：]\s*"
_ROW_NPU = re.compile(r"^(\d+)\s+(\S.*)$")
_ROW_CHIP = re.compile(r"^(\d+)(?:\s+(\d+))?$")
_USAGE = re.compile(r"\s*/\s*")


@dataclass(frozen=True)
class ChipReading:
    """One chip of `npu-smi info`. Numbers are None where npu-smi printed none (`-`, `NA`)."""

    npu_id: int
    chip_id: int
    health: str
    power_w: float | None
    temp_c: float | None
    aicore_pct: float | None
    hbm_used_mb: int | None
    hbm_total_mb: int | None
    bus_id: str | None


@dataclass(frozen=True)
class HealthDetail:
    """`npu-smi info -t health -i N -c M`. `error_code` and `information` are None for `NA`."""

    status: str
    error_code: str | None
    information: str | None


def summary_argv() -> list[str]:
    return ["npu-smi", "info"]


def health_argv(npu_id: int, chip_id: int) -> list[str]:
    return ["npu-smi", "info", "-t", "health", "-i", str(npu_id), "-c", str(chip_id)]


def link_argv(phy_id: int) -> list[str]:
    return ["hccn_tool", "-i", str(phy_id), "-link", "-g"]


def net_health_argv(phy_id: int) -> list[str]:
    return ["hccn_tool", "-i", str(phy_id), "-net_health", "-g"]


# --- npu-smi info ---------------------------------------------------------------------------


def parse_summary(text: str) -> list[ChipReading]:
    """Every chip of the summary table, in the order printed. An empty table (a container that
    sees no NPU) is an empty list; text without the table's header is a ParseError."""
    rows = [_cells(line) for line in text.splitlines() if line.lstrip().startswith("|")]
    header = next((i for i, cells in enumerate(rows) if _is_header(cells)), None)
    if header is None:
        raise ParseError("no `NPU  Name | Health` header: not the npu-smi info table")
    readings: list[ChipReading] = []
    card: tuple[int, str, list[str]] | None = None  # npu id, health, the NPU row's numbers
    for cells in rows[header + 1 :]:
        if "Process id" in cells or cells[0].startswith("No running processes"):
            break  # the process table follows the chips
        if cells[0].startswith("Chip") and cells[1:2] == ["Bus-Id"]:
            continue  # the header's second line
        if len(cells) != 3:
            raise ParseError(f"unexpected row {'|'.join(cells)!r}")
        first, second, third = cells[0], cells[1], cells[2]
        if normalise_bdf(second) is not None or second.upper() in _ABSENT - {""}:
            chip = _ROW_CHIP.match(first)
            if chip is None or card is None:
                raise ParseError(f"chip row {first!r} without a valid chip id or before any NPU row")
            readings.append(_reading(card, int(chip.group(1)), second, third))
            continue
        npu = _ROW_NPU.match(first)
        if npu is None or not second:
            raise ParseError(f"unexpected row {'|'.join(cells)!r}")
        card = (int(npu.group(1)), second, _numbers(third, 3))
    return readings


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [cell.strip() for cell in inner.split("|")]


def _is_header(cells: list[str]) -> bool:
    return len(cells) >= 3 and cells[0].split()[:2] == ["NPU", "Name"] and cells[1] == "Health"


def _numbers(cell: str, count: int) -> list[str]:
    """The cell's values, `used / total` pairs kept together: `0    / 0` is one value."""
    values = _USAGE.sub("/", cell).split()
    if len(values) != count:
        raise ParseError(f"expected {count} values in {cell!r}")
    return values


def _reading(card: tuple[int, str, list[str]], chip_id: int, bus: str, third: str) -> ChipReading:
    npu_id, health, (power, temp, _hugepages) = card
    aicore, _memory, hbm = _numbers(third, 3)
    used, total = _pair(hbm)
    return ChipReading(
        npu_id=npu_id,
        chip_id=chip_id,
        health=health,
        power_w=_float(power),
        temp_c=_float(temp),
        aicore_pct=_float(aicore),
        hbm_used_mb=used,
        hbm_total_mb=total,
        bus_id=normalise_bdf(bus),
    )


def _float(text: str) -> float | None:
    if text.upper() in _ABSENT:
        return None
    try:
        return float(text)
    except ValueError:
        raise ParseError(f"{text!r} is not a number") from None


def _pair(text: str) -> tuple[int | None, int | None]:
    parts = text.split("/")
    if len(parts) != 2:
        raise ParseError(f"{text!r} is not `used / total`")
    return _int(parts[0]), _int(parts[1])


def _int(text: str) -> int | None:
    if text.upper() in _ABSENT:
        return None
    if not text.isdigit():
        raise ParseError(f"{text!r} is not a whole number")
    return int(text)


# --- npu-smi info -t health ---------------------------------------------------------------


def parse_health(text: str) -> HealthDetail:
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(rf"^\s*(Health Status|Error Code|Error Information){_COLON}(.*?)\s*$", line)
        if match and match.group(1) not in values:
            values[match.group(1)] = match.group(2)
    status = values.get("Health Status", "")
    if not status:
        raise ParseError("no `Health Status` line")
    return HealthDetail(
        status=status,
        error_code=_present(values.get("Error Code")),
        information=_present(values.get("Error Information")),
    )


def _present(value: str | None) -> str | None:
    return None if value is None or value.upper() in _ABSENT else value


# --- hccn_tool ----------------------------------------------------------------------------


def parse_link(text: str) -> str:
    """`link status: UP` -> "UP" (upper-cased, as hccn_tool prints it)."""
    return _status(text, "link status").upper()


def parse_net_health(text: str) -> str:
    """`net health status: Success` -> "Success"; the other words as printed ("Receive timeout")."""
    return _status(text, "net health status")


def _status(text: str, key: str) -> str:
    for line in text.splitlines():
        match = re.match(rf"^\s*{key}{_COLON}(\S.*?)\s*$", line, re.IGNORECASE)
        if match:
            return match.group(1)
    raise ParseError(f"no `{key}:` line")
