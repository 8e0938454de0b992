"""The simulated Coordinator's TLS set-up, with MindIE-Motor's outcomes when it fails
(mindie_motor/src/coordinator/Coordinator.cpp `Coordinator::Run`, `StartManagerServer`; main.cpp
`main`; common/http_server/HttpServer.cpp `HttpServer::Run`, `SetTlsCtx`;
request_repeater/RequestRepeater.cpp `RequestRepeater::Init`; metrics/Metrics.cpp
`GetServerMetircs`). The file rules themselves are motortls.py's.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
from typing import Any

from supervisor_pd.simulator import motortls
from supervisor_pd.simulator.coordinator.instances import log
from supervisor_pd.simulator.tls import TlsError


def log_lines(exc: BaseException, *more: str) -> None:
    for line in [*str(exc).splitlines(), *more]:
        log(f"[ERROR] {line}")


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        log(f"[WARN] {warning}")


def business_link(items: motortls.TlsItems | None) -> motortls.Link | None:
    """mindie_client, made at start by RequestRepeater::Init for the prefill requests, the
    /dresult streams and /v1/tokenizer. None when its files are refused: Coordinator::Run then
    returns -1, which main() ignores, so the process ends with status 0."""
    if items is None or not items.enabled:
        return motortls.Link()
    try:
        context, warnings = motortls.client_context(items)
    except TlsError as exc:
        log_lines(
            exc,
            "[RequestRepeater] Initialize HTTP client failed.",
            "[Coordinator] Coordinator failed to init repeater or scheduler.",
        )
        return None
    _warn(warnings)
    return motortls.Link(context)


class MetricsLink:
    """mindie_mangment, toward the Servers' metrics ports. GetServerMetircs makes a client for
    every scrape and ignores a failed Init, so refused files fail that scrape (None) and are
    tried again at the next one."""

    def __init__(self, items: motortls.TlsItems | None) -> None:
        self.items = items
        self._link: motortls.Link | None = None

    def get(self) -> motortls.Link | None:
        if self.items is None or not self.items.enabled:
            return motortls.Link()
        if self._link is None:
            try:
                context, warnings = motortls.client_context(self.items)
            except TlsError as exc:
                log_lines(exc, "[Metrics] Get mindie-server metrics failed.")
                return None
            _warn(warnings)
            self._link = motortls.Link(context)
        return self._link


def listener_context(items: motortls.TlsItems | None) -> tuple[Any, bool]:
    """(SSL context or None, refused) for one listener (HttpServer::SetTlsCtx)."""
    if items is None or not items.enabled:
        return None, False
    try:
        context, warnings = motortls.listener_context(items)
    except TlsError as exc:
        log_lines(exc, "[HttpServer] Set TLS context 0 failed.")
        return None, True
    _warn(warnings)
    return context, False


def dead_listener(host: str, port: int) -> socket.socket:
    """HttpServer::Run after a failed SetTlsCtx (manage, status, external): the acceptor is
    already bound and listening, Run returns, and nothing ever accepts. Connections wait in the
    backlog unanswered; the Coordinator runs on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    return sock


def terminate() -> None:
    """The predict listener's SetTlsCtx failed: the data server's Run returns, so does
    Coordinator::Run, and ~Coordinator leaves the status and external threads joinable:
    std::terminate, SIGABRT."""
    log("terminate called without an active exception")
    sys.stdout.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.abort()
