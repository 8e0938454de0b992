"""What a particular kind of stack adds to the generic engine: the hooks and a do-nothing default.

The engine knows processes, dependencies, readiness and restarts; a `Rules` object knows what
the processes are (runtime/mindie.py for MindIE's): what their answers say, which failure drags
which other process along, and what to judge periodically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from supervisor_pd.runtime.events import Probe
from supervisor_pd.runtime.probes import Result

if TYPE_CHECKING:
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.engine import Engine


class Rules(Protocol):
    """What a particular kind of stack adds to the generic engine (runtime/mindie.py)."""

    def answered(self, engine: Engine, child: Child, probe: Probe, result: Result) -> None: ...

    def busy(self, result: Result) -> int:
        """Requests in flight, from a process's answer to its `work` check."""
        ...

    def failed(self, engine: Engine, child: Child) -> None:
        """After `child` failed and its restart was decided: which others it drags along."""
        ...

    def tick(self, engine: Engine, now: float) -> float | None:
        """Periodic judgement; returns when it wants to run again (None: on the next event)."""
        ...


class NoRules:
    def answered(self, engine: Engine, child: Child, probe: Probe, result: Result) -> None:
        return None

    def busy(self, result: Result) -> int:
        return 0

    def failed(self, engine: Engine, child: Child) -> None:
        return None

    def tick(self, engine: Engine, now: float) -> float | None:
        return None
