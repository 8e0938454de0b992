"""Parsers for npu-smi output (reference §7.1-7.3). Pure functions of text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_COLON = r"\s*[:：]\s*"
_BDF = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")


class ParseError(ValueError):
    """The text does not have the expected shape."""


@dataclass(frozen=True)
class ListedNpu:
    npu_id: int
    chip_count: int
    product_name: str


@dataclass(frozen=True)
class MappedChip:
    npu_id: int
    chip_id: int
    logic_id: int
    phy_id: int | None
    chip_name: str


def parse_key_values(text: str) -> dict[str, str]:
    """`Key   : value` lines into a dict (first occurrence wins); keys keep their spaces."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(rf"^\s*([^:：]+?){_COLON}(.*?)\s*$", line)
        if match and match.group(1) not in values:
            values[match.group(1)] = match.group(2)
    return values


def parse_list(text: str) -> list[ListedNpu]:
    """`npu-smi info -l`: one entry per `NPU ID` block, with that block's Chip Count."""
    npus: list[ListedNpu] = []
    current: dict[str, str] | None = None

    def flush() -> None:
        if current is None:
            return
        count_text = current.get("Chip Count", "1")
        if not count_text.isdigit() or int(count_text) < 1:
            raise ParseError(f"NPU {current['NPU ID']}: Chip Count {count_text!r} is not a positive number")
        npus.append(ListedNpu(int(current["NPU ID"]), int(count_text), current.get("Product Name", "")))

    for line in text.splitlines():
        match = re.match(rf"^\s*(NPU ID|Chip Count|Product Name){_COLON}(.*?)\s*$", line)
        if not match:
            continue
        key, value = match.groups()
        if key == "NPU ID":
            if not value.isdigit():
                raise ParseError(f"NPU ID {value!r} is not a number")
            flush()
            current = {"NPU ID": value}
        elif current is not None:
            current.setdefault(key, value)
    flush()
    if not npus and text.strip() and "Count" not in text:
        raise ParseError("no 'NPU ID' entries")
    return npus


def parse_map(text: str) -> list[MappedChip]:
    """`npu-smi info -m`: compute chips only (rows whose Chip Logic ID is `-`, the Mcu, are skipped).

    Newer drivers add a `Chip Phy-ID` column; older ones do not.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header_at = next((i for i, line in enumerate(lines) if "Chip Logic ID" in line), None)
    if header_at is None:
        raise ParseError("no 'Chip Logic ID' header")
    has_phy = "Phy-ID" in lines[header_at] or "Phy ID" in lines[header_at]
    chips: list[MappedChip] = []
    for line in lines[header_at + 1 :]:
        fields = line.split()
        needed = 5 if has_phy else 4
        if len(fields) < needed - 1 or not (fields[0].isdigit() and fields[1].isdigit()):
            raise ParseError(f"unexpected row {line.strip()!r}")
        logic = fields[2]
        phy = fields[3] if has_phy else None
        name = " ".join(fields[4 if has_phy else 3 :])
        if logic == "-" or not logic.isdigit():
            continue
        chips.append(
            MappedChip(
                npu_id=int(fields[0]),
                chip_id=int(fields[1]),
                logic_id=int(logic),
                phy_id=int(phy) if phy is not None and phy.isdigit() else None,
                chip_name=name,
            )
        )
    return chips


def parse_board_bdf(text: str) -> str | None:
    """`npu-smi info -t board -i N -c C`: the PCIe bus address, normalised to 0000:c1:00.0."""
    for line in text.splitlines():
        compact = re.sub(r"\s+", "", line)
        if compact.startswith("PCIeBusInfo"):
            value = re.split(r"[:：]", compact, maxsplit=1)[1] if re.search(r"[:：]", compact) else ""
            return normalise_bdf(value)
    return None


def normalise_bdf(value: str) -> str | None:
    match = _BDF.match(value.strip())
    if not match:
        return None
    domain, bus, device, function = match.groups()
    return f"{(domain or '0000').lower()}:{bus.lower()}:{device.lower()}.{function}"


@dataclass(frozen=True)
class SuperPodInfo:
    sdid: str
    super_pod_id: str
    server_index: str | None


def parse_spod_info(text: str) -> SuperPodInfo | None:
    """`npu-smi info -t spod-info -i N -c C` (A3): SDID and Super Pod ID, or None if absent."""
    values = parse_key_values(text)
    sdid = values.get("SDID", "")
    pod = values.get("Super Pod ID", "")
    if not (sdid.isdigit() and pod.isdigit()):
        return None
    return SuperPodInfo(sdid=sdid, super_pod_id=pod, server_index=values.get("Server Index"))
