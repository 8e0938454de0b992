"""A simulated Server's role status, links and start-up health wait, on MindIE's own timers.

MindIE-LLM `src/server/endpoint/http_wrapper/dmi_role.cpp`:
- every accepted role request sets RoleSwitching (`ProcessPDRoleSwitch`), whatever it changes;
- `UpdateIpInfo` works out the links to make (peers neither linked nor linking) and to drop
  (linked or linking peers no longer named); a link task runs only when there is one of either;
- a query thread asks the backend every `QUERY_INTERVAL_SECONDS` (10 s): links found made become
  `ok`, and RoleReady is set only there (`CheckAllLinksCompleted`: nothing linking, something
  linked). The query is skipped while nothing is linking, so a role request that makes no new
  link (the same peers again, or only drops) leaves the Server in RoleSwitching;
- `/v1/status` lists only peers whose link has an outcome (`ok`, or a failure), not `linking`.

MindIE-LLM `src/server/endpoint/health_checker/health_checker.cpp` `WaitForLlmEngineReady`: the
service status stays INIT (readiness "Service is abnormal") until, on a 5 s check
(`checkIntervalSeconds`), the engine is ready and, in dmi mode, the role status is RoleReady; then
one more 5 s sleep and NORMAL. After that the role status no longer bears on readiness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from supervisor_pd.simulator.knobs import Knobs
from supervisor_pd.simulator.server.state import LINKING, ROLE_READY, Peer, ServerState

QUERY_INTERVAL = 10.0  # dmi_role.cpp QUERY_INTERVAL_SECONDS
CHECK_INTERVAL = 5.0  # health_checker.h checkIntervalSeconds


def update_links(state: ServerState, peers: list[dict[str, Any]]) -> tuple[list[Peer], list[int]]:
    """UpdateIpInfo: the peers to link now, and the ids dropped (linked or still linking)."""
    wanted: dict[int, Peer] = {}
    new: list[Peer] = []
    for item in peers:
        peer_id = int(item.get("id", -1))
        known = state.peers.get(peer_id)
        if known is None:
            known = Peer(peer_id, str(item.get("server_ip", "")))
            new.append(known)
        wanted[peer_id] = known
    dropped = [peer_id for peer_id in state.peers if peer_id not in wanted]
    state.peers = wanted
    return new, dropped


def query_links(state: ServerState) -> None:
    """QueryLinkStatus and CheckAllLinksCompleted."""
    linking = [peer for peer in state.peers.values() if peer.link == LINKING]
    if not state.role_assigned or not linking:
        return
    for peer in linking:
        if peer.made:
            peer.link = "ok"
    if all(peer.link != LINKING for peer in state.peers.values()) and any(
        peer.link == "ok" for peer in state.peers.values()
    ):
        state.role_status = ROLE_READY


async def query_loop(state: ServerState, knobs: Knobs, log: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(knobs.scaled(QUERY_INTERVAL))
        before = state.role_status
        query_links(state)
        if state.role_status != before:
            log(f"All links completed successfully. Setting role status to READY ({state.role})")


async def health_wait(state: ServerState, knobs: Knobs, log: Callable[[str], None]) -> None:
    """WaitForLlmEngineReady: INIT until the engine and (dmi) the role are ready, then NORMAL."""
    while True:
        if state.model_loaded and (not state.config.dmi or state.role_status == ROLE_READY):
            await asyncio.sleep(knobs.scaled(CHECK_INTERVAL))  # "one more sleep to be sure"
            state.service_normal = True
            log("HealthChecker: Init finished, update status to normal")
            return
        await asyncio.sleep(knobs.scaled(CHECK_INTERVAL))
