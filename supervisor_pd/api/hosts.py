"""Which `Host` a request for supervisor_pd's status may name (DNS rebinding).

A web page open in a browser on the same machine can make the browser ask `http://evil.example
:8080/v1/status` after pointing evil.example at 127.0.0.1: the browser then reads the reply as
the page's own. It cannot make the browser send another `Host`, so the status routes answer only
requests whose Host is an IP address, `localhost`, this pod's own name, or a name listed in
SUPERVISOR_PD_API_HOSTS; others get 421. Probes, /metrics and the inference API stay open to any
name (Services and scrapers reach them by name); the control routes and the logs need the token
on TCP anyway, which no page can send.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from supervisor_pd.api.errors import json_response
from supervisor_pd.api.requests import shown
from supervisor_pd.settings import env_name

GUARDED = ("/v1/status", "/v1/processes")


def host_name(header: str) -> str:
    """The name of a Host header, without its port; an IPv6 literal without its brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    def __init__(self, extra: tuple[str, ...] = (), refused: Callable[[str, str], None] | None = None) -> None:
        self.refused = refused
        names = {"localhost", socket.gethostname().lower(), os.environ.get("HOSTNAME", "").lower(), *extra}
        self.names = frozenset(name.strip().lower().rstrip(".") for name in names if name and name.strip())

    def allows(self, header: str | None) -> bool:
        if header is None:
            return True  # HTTP/1.0 without Host: not a browser
        name = host_name(header).rstrip(".")
        return _is_ip(name) or name in self.names or name.endswith(".localhost")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(GUARDED) and request.transport is not None:
            on_socket = request.transport.get_extra_info("socket")
            if on_socket is not None and on_socket.family != socket.AF_UNIX:
                header = request.headers.get("Host")
                if not self.allows(header):
                    if self.refused is not None:
                        self.refused(
                            "host",
                            f"status request {request.method} {shown(request.path)} from {request.remote or '?'} "
                            f"refused: Host {shown(header or '')!r} is not a name of this pod",
                        )
                    return json_response(
                        {
                            "error": f"Host {shown(header or '')!r} is not one this port answers status for: use its "
                            f"IP address or localhost, or list the name in {env_name('api_hosts')}"
                        },
                        421,
                    )
        return await handler(request)
