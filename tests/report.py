"""Rows the reliability suite records for docs/RELIABILITY.md.

When SUPERVISOR_PD_REPORT_DIR is set (bench/reliability.py sets it), each call appends one JSON
line to <dir>/<table>.jsonl; otherwise nothing is written. The tests assert on the same values
they record, so a row in the document is a row that passed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPORT_DIR = "SUPERVISOR_PD_REPORT_DIR"


def record(table: str, row: dict[str, Any]) -> None:
    folder = os.environ.get(REPORT_DIR)
    if not folder:
        return
    path = Path(folder) / f"{table}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
