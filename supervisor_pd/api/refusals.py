"""Refused requests: counted in /metrics, logged at most once per interval per reason.

A client must not be able to push the supervisor's own lines out of its in-memory log tail by
sending bad requests: the first refusal of a kind is logged at once, the next ones within
INTERVAL only counted, and the count is logged with the next line of that kind after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

INTERVAL = 10.0


@dataclass
class _Kind:
    logged_at: float
    suppressed: int = 0


class Refusals:
    def __init__(
        self, log: Callable[[str], None], registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.clock = clock
        self.counter = Counter(
            "supervisor_pd_requests_refused",
            "Requests supervisor_pd refused before serving them, by reason.",
            ["reason"],
            registry=registry,
        )
        self._kinds: dict[str, _Kind] = {}

    def note(self, reason: str, line: str, count: int = 1) -> None:
        """`count` refusals of kind `reason`; `line` is what the log would say of them."""
        self.counter.labels(reason).inc(count)
        now = self.clock()
        kind = self._kinds.get(reason)
        if kind is not None and now - kind.logged_at < INTERVAL:
            kind.suppressed += 1
            return
        more = f" (and {kind.suppressed} more like it in the last {INTERVAL:g} s)" if kind and kind.suppressed else ""
        self._kinds[reason] = _Kind(now)
        self.log(line + more)
