"""Starting a MindIE Server only once its ports can be bound the way it binds them.

The Server checks `port`, `managementPort` and `metricsPort` with a bind on 0.0.0.0 without
SO_REUSEADDR before it listens and dies at once if one fails (MindIE-LLM http_server.cpp
IsPortUsed, HttpServer::HttpServerInit). A connection of its previous run keeps a port so for up
to about a minute (FIN-WAIT-2, then TIME_WAIT): a restart in that time would only fail, again and
again, spending the restart budget. So the start waits, and the wait is not a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.effects import Effects

PORT_POLL = 0.5


def ports_released(fx: Effects, child: Child, now: float, limit: float) -> bool:
    """True when `child` may start; else its start is put off by PORT_POLL, for up to `limit`
    seconds (SUPERVISOR_PD_PORT_WAIT_SECONDS; TIME_WAIT lasts 60 s on Linux, after a FIN-WAIT-2
    that can last as long), after which it may start and fail as it will."""
    if limit <= 0:
        return True
    busy = fx.ports_in_use(child.spec.exclusive_ports)
    if not busy:
        if child.port_wait_since is not None:
            fx.log(f"{child.name}: port(s) free after {now - child.port_wait_since:.1f} s")
        child.port_wait_since = None
        return True
    names = ", ".join(map(str, busy))
    if child.port_wait_since is None:
        child.port_wait_since = now
        fx.log(
            f"{child.name}: waiting for port(s) {names} to be released (a connection of its last run in TIME_WAIT, "
            "or another process): MindIE's Server exits on a port it cannot bind without SO_REUSEADDR "
            f"(not counted against {child.name}'s restarts; up to {limit:g} s)"
        )
    if now - child.port_wait_since >= limit:
        fx.log(f"{child.name}: port(s) {names} still in use after {limit:g} s; starting it anyway")
        child.port_wait_since = None
        return True
    child.restart_at = now + PORT_POLL
    return False
