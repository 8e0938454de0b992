"""Where every port is chosen. One allocator for all components, in a fixed order, so the same
inputs give the same ports.

A configured port is kept unless it is out of range (an error), already given to another
component, inside the kernel's ephemeral range, or cannot be bound on its IP. Pinned ports (the
supervisor's API and the Coordinator's predict port, which clients outside the container dial)
are never moved: a clash is an error. Other clashes are repaired by moving the port to the next
free one from the base, and the move is reported; `SUPERVISOR_PD_PORT_CONFLICTS=strict` makes
every clash an error instead.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from supervisor_pd.errors import InputError
from supervisor_pd.plan.model import PortAssignment, PortOrigin
from supervisor_pd.settings import env_name

MIN_PORT, MAX_PORT = 1024, 65535
ANY_IP = "0.0.0.0"


class Trouble(Enum):
    IN_USE = "in use"
    BAD_IP = "bad ip"
    DENIED = "denied"


@dataclass(frozen=True)
class PortProblem:
    trouble: Trouble
    text: str


class PortChecker(Protocol):
    def problem(self, ip: str, port: int) -> PortProblem | None:
        """None if `port` can be bound on `ip` now, else what stops it."""


@dataclass(frozen=True)
class PortRequest:
    owner: str
    field: str
    where: str
    ip: str
    ip_source: str
    listens: bool
    configured: int | None
    pinned: bool = False
    also_written_to: tuple[str, ...] = ()


class PortAllocator:
    def __init__(self, checker: PortChecker, base: int, ephemeral: tuple[int, int], strict: bool) -> None:
        self._checker = checker
        self._cursor = base
        self._ephemeral = ephemeral
        self._strict = strict
        self._taken: dict[int, str] = {}
        self.assignments: list[PortAssignment] = []
        self.warnings: list[str] = []

    def claim(self, request: PortRequest) -> int:
        """The port `request` gets; raises InputError when it cannot be given one."""
        value = request.configured
        if value is None:
            return self._record(request, self._next_free(request), PortOrigin.GENERATED, None, "")
        if not MIN_PORT <= value <= MAX_PORT:
            raise InputError(request.where, f"{value} is not an allowed port: use {MIN_PORT}-{MAX_PORT}")
        reason = self._clash(request, value)
        if reason is None:
            return self._record(request, value, PortOrigin.CONFIGURED, None, "")
        if request.pinned or self._strict:
            hint = (
                "this port is dialled from outside the container and is never moved; free it or choose another"
                if request.pinned
                else f"{env_name('port_conflicts')}=strict forbids moving it"
            )
            raise InputError(request.where, f"port {value} {reason} ({hint})")
        moved = self._next_free(request)
        return self._record(request, moved, PortOrigin.MOVED, value, f"{value} {reason}")

    def _record(self, request: PortRequest, port: int, origin: PortOrigin, requested: int | None, reason: str) -> int:
        self._taken[port] = f"{request.owner} {request.field}"
        self.assignments.append(
            PortAssignment(
                owner=request.owner,
                field=request.field,
                port=port,
                ip=request.ip,
                listens=request.listens,
                origin=origin,
                requested=requested,
                reason=reason,
                also_written_to=request.also_written_to,
            )
        )
        return port

    def _in_ephemeral(self, port: int) -> bool:
        return self._ephemeral[0] <= port <= self._ephemeral[1]

    def _clash(self, request: PortRequest, port: int) -> str | None:
        if port in self._taken:
            return f"is already given to {self._taken[port]}"
        if self._in_ephemeral(port):
            text = (
                f"is inside the kernel's ephemeral port range {self._ephemeral[0]}-{self._ephemeral[1]}, "
                "where outgoing connections may take it"
            )
            if not request.pinned:
                return text
            self.warnings.append(f"{request.owner} {request.field}: port {port} {text}")
        problem = self._checker.problem(request.ip, port)
        if problem is None:
            return None
        if problem.trouble is Trouble.BAD_IP:
            raise InputError(request.ip_source, f"{request.ip} {problem.text} (needed for {request.where})")
        return problem.text

    def _next_free(self, request: PortRequest) -> int:
        while self._cursor <= MAX_PORT:
            port = self._cursor
            self._cursor += 1
            if port in self._taken or self._in_ephemeral(port):
                continue
            problem = self._checker.problem(request.ip, port)
            if problem is None:
                return port
            if problem.trouble is Trouble.BAD_IP:
                raise InputError(request.ip_source, f"{request.ip} {problem.text} (needed for {request.where})")
        raise InputError(
            env_name("port_base"),
            f"no free port left between the base and {MAX_PORT} for {request.owner} {request.field}",
        )


class BindChecker:
    """Checks a port by binding it, the way the MindIE daemons will (SO_REUSEADDR, TCP)."""

    def problem(self, ip: str, port: int) -> PortProblem | None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ip, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return PortProblem(Trouble.IN_USE, f"is in use{_owner(port)}")
                if exc.errno == errno.EADDRNOTAVAIL:
                    return PortProblem(Trouble.BAD_IP, "is not an address of this host")
                if exc.errno == errno.EACCES:
                    return PortProblem(Trouble.DENIED, "cannot be bound without privileges")
                return PortProblem(Trouble.IN_USE, f"cannot be bound: {exc.strerror}")
        return None


def _owner(port: int) -> str:
    """' by pid 123 (nginx)' when /proc tells who listens on `port`, else ''."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return ""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            descriptors = list((process / "fd").iterdir())
        except OSError:
            continue
        links = set()
        for descriptor in descriptors:
            with contextlib.suppress(OSError):  # closed since the listing
                links.add(str(descriptor.readlink()))
        if links & wanted:
            try:
                name = (process / "comm").read_text().strip()
            except OSError:
                name = "?"
            return f" by pid {process.name} ({re.sub(r'[^ -~]', '?', name)})"
    return " by another process"
