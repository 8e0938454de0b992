"""Atlas model from `lspci` (reference §7.6): d802 is an 800I A2, d803 an 800I A3."""

from __future__ import annotations

import re

from supervisor_pd.platform.facts import DeviceType

_PCI_IDS = {"d802": DeviceType.A2, "d803": DeviceType.A3}


def device_type_from_lspci(text: str) -> DeviceType | None:
    """The model named by the first Huawei accelerator line, or None."""
    for line in text.splitlines():
        if "accelerators" not in line.lower():
            continue
        match = re.search(r"Device\s+([0-9a-fA-F]{4})\b", line)
        if match and match.group(1).lower() in _PCI_IDS:
            return _PCI_IDS[match.group(1).lower()]
    return None


def device_type_from_chip(chip_name: str, chips_per_npu: int) -> DeviceType | None:
    """Fallback when lspci is unavailable: 910B chips are A2; 910C (two dies per NPU) is A3."""
    name = chip_name.replace(" ", "").upper()
    if "910B" in name:
        return DeviceType.A2
    if "910C" in name or "910_93" in name or (name.endswith("910") and chips_per_npu == 2):
        return DeviceType.A3
    return None
