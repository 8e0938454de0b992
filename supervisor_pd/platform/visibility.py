"""ASCEND_VISIBLE_DEVICES (physical ids) and ASCEND_RT_VISIBLE_DEVICES (logical ids), reference §7.7."""

from __future__ import annotations

import re

# Far more NPUs than one host has; it bounds what a range like 0-99999999999 expands to.
MAX_ID = 1023


def _entry(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:21] + "...")


def parse_id_list(text: str, *, allow_ranges: bool) -> list[int]:
    """`0-3,6` into ids in the order given. Raises ValueError saying what is wrong.

    Device names of the Ascend Docker Runtime (`Ascend910-3`) count as their id.
    """
    ids: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            raise ValueError("has an empty entry")
        named = re.fullmatch(r"Ascend[0-9A-Za-z]+-(\d+)", part)
        if named:
            part = named.group(1)
        low, sep, high = part.partition("-")
        if sep and not allow_ranges:
            raise ValueError(f"entry {_entry(part)}: ranges are not allowed here, list the ids")
        numbers = [low, high] if sep else [low]
        if not all(re.fullmatch(r"[0-9]+", number) for number in numbers):
            kind = "a number or a range like 0-3" if allow_ranges else "a number"
            raise ValueError(f"entry {_entry(raw.strip())} is not {kind}")
        numbers = [number.lstrip("0") or "0" for number in numbers]
        # Length first: Python itself refuses int() of a few thousand digits, with its own message.
        if any(len(number) > len(str(MAX_ID)) or int(number) > MAX_ID for number in numbers):
            raise ValueError(f"entry {_entry(part)} is out of range: ids run from 0 to {MAX_ID}")
        first, last = int(numbers[0]), int(numbers[-1])
        if last < first:
            raise ValueError(f"range {_entry(part)} runs backwards")
        ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise ValueError("names an id twice")
    return ids
