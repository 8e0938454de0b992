"""ASCEND_VISIBLE_DEVICES (physical ids) and ASCEND_RT_VISIBLE_DEVICES (logical ids), reference §7.7."""

from __future__ import annotations

import re


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
            raise ValueError(f"entry {part!r}: ranges are not allowed here, list the ids")
        if not low.isdigit() or (sep and not high.isdigit()):
            kind = "a number or a range like 0-3" if allow_ranges else "a number"
            raise ValueError(f"entry {raw.strip()!r} is not {kind}")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise ValueError(f"range {part!r} runs backwards")
        ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise ValueError("names an id twice")
    return ids
