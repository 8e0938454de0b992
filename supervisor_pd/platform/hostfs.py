"""Reads of /sys, /proc, /dev and /etc, all under one configurable root.

Tests and the simulator point the root at a fixture tree; production uses "/".
"""

from __future__ import annotations

import re
from pathlib import Path

_MAX_HOST_FILE = 1 << 20


class HostFS:
    """A view of the host's files under `root`."""

    def __init__(self, root: Path | str = "/") -> None:
        self.root = Path(root)

    def path(self, absolute: str | Path) -> Path:
        """Map an absolute host path (``/sys/...``) to its place under the root."""
        return self.root / str(absolute).lstrip("/")

    def read_text(self, absolute: str | Path) -> str | None:
        """The file's text, or None if it does not exist or cannot be read."""
        try:
            with self.path(absolute).open("rb") as handle:
                return handle.read(_MAX_HOST_FILE).decode("utf-8", errors="replace")
        except OSError:
            return None

    def exists(self, absolute: str | Path) -> bool:
        return self.path(absolute).exists()

    def davinci_ids(self) -> set[int]:
        """Physical ids of the /dev/davinciN device nodes present."""
        found: set[int] = set()
        try:
            entries = list(self.path("/dev").iterdir())
        except OSError:
            return found
        for entry in entries:
            match = re.fullmatch(r"davinci(\d+)", entry.name)
            if match:
                found.add(int(match.group(1)))
        return found
