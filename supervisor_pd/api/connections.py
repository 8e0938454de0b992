"""How many client connections the HTTP port holds, so that probes and control always get one.

Every connection costs a file descriptor, and every proxied request one more (to the
Coordinator). When the process runs out, `accept()` fails: uvloop (libuv) then accepts and resets
what is pending, plain asyncio stops accepting for a second at a time. Either way the kubelet's
probes fail beside idle connections that hold every descriptor. So the port keeps a budget below
the descriptor limit:

- at most `limit` client connections: when a new one would pass it, the connections that are
  not in a request (idle keep-alive, or never sent one) are closed, oldest first;
- at most `limit - PROBE_ROOM` proxied requests at once: more get 503 + Retry-After, so the
  connections left are for probes, status and control, which are answered in microseconds;
- the descriptors for that, plus ACCEPT_BURST (asyncio accepts up to the backlog before any of
  them reaches us), SPARE and PER_CHILD for each child (its pipes and pidfd, its health checks
  and metrics scrapes, started after the port opens) stay free.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

BACKLOG = 1024
# 64 KiB of window still takes a 1 MiB body in about 16 round trips (16 ms at a 1-ms RTT).
RECEIVE_BUFFER = 64 * 1024
# Accepted before the budget sees them. uvloop, which `run` uses, hands over each connection
# as it accepts it; plain asyncio accepts up to the backlog in one round, which this does not
# cover.
ACCEPT_BURST = 128
SPARE = 64
PER_CHILD = 8
PROBE_ROOM = 32  # connections a full load of streams leaves for probes, status and control
MINIMUM = 2 * PROBE_ROOM


def listening_socket(host: str, port: int) -> socket.socket:
    """The TCP port's socket. A long backlog: under a flood of connects the kernel queues a probe's
    connection instead of dropping it (the client would retry after a second). A small receive
    buffer: a body refused at its headers (415, 413) has little more read and parsed first."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((host, port))
        sock.listen(BACKLOG)  # create_server listens again: it is given BACKLOG too
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_descriptors() -> int:
    try:
        return sum(1 for _ in Path("/proc/self/fd").iterdir())
    except OSError:
        return 64  # no /proc: a typical count at this point


def capacity(soft_limit: int, in_use: int, children: int, configured: int) -> int:
    """Client connections the port may hold under a descriptor limit of `soft_limit` with
    `in_use` open now and `children` to run; `configured` (SUPERVISOR_PD_API_MAX_CONNECTIONS)
    lowers it, 0 = no cap of its own."""
    room = soft_limit - in_use - ACCEPT_BURST - SPARE - PER_CHILD * children
    derived = max(room // 2, MINIMUM)  # half: each may carry a connection to the Coordinator
    return min(configured, derived) if configured else derived


class Connections:
    """The budget on one aiohttp server: `factory` for its TCP site, `middleware` in its app."""

    def __init__(self, limit: int, refused: Callable[[str, str, int], None]) -> None:
        self.limit = limit
        self.refused = refused
        self._in_request: dict[RequestHandler, int] = {}
        self._server: web.Server | None = None
        # An upper bound of the open connections: counted at the last look, plus those made
        # since (closing only lowers it). Looking copies the list, so only near the limit.
        self._counted = 0
        self._made_since = 0

    @property
    def max_in_flight(self) -> int:
        return max(self.limit - PROBE_ROOM, 1)

    def open(self) -> int:
        return len(self._server.connections) if self._server is not None else 0

    def factory(self, server: web.Server) -> Callable[[], RequestHandler]:
        """The protocol factory for the TCP listener: room is made before each new connection."""
        self._server = server

        def make() -> RequestHandler:
            self._made_since += 1
            if self._counted + self._made_since >= self.limit:
                handlers = server.connections
                self._counted, self._made_since = len(handlers) - self._make_room(handlers), 1
            return server()

        return make

    def _make_room(self, handlers: list[RequestHandler]) -> int:
        """Close idle connections until a new one fits; how many were closed."""
        excess = len(handlers) + 1 - self.limit
        if excess <= 0:
            return 0
        closed = 0
        for handler in handlers:  # oldest first: the order connections were made
            if closed >= excess:
                break
            if handler not in self._in_request and handler.transport is not None:
                handler.force_close()
                closed += 1
        if closed:
            self.refused(
                "connections",
                f"{closed} idle connection(s) closed: the HTTP port holds at most {self.limit} (file descriptors "
                "are kept for probes and control)",
                closed,
            )
        return closed

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        protocol = request.protocol
        self._in_request[protocol] = self._in_request.get(protocol, 0) + 1
        try:
            return await handler(request)
        finally:
            left = self._in_request[protocol] - 1
            if left:
                self._in_request[protocol] = left
            else:
                del self._in_request[protocol]
