"""A small HTTP/1.1 server on asyncio streams, for simulated Servers.

A simulated Server must stay under 40 MB RSS so that dozens fit on a small machine; a web
framework alone costs that much. This covers what MindIE's endpoints need: routing by method and
path, Content-Length and chunked request bodies, keep-alive, and chunked streaming responses
whose producer is cancelled when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    import ssl as ssl_module

MAX_HEAD = 16 * 1024
MAX_BODY = 32 * 1024 * 1024
IDLE_SECONDS = 75.0
HANDSHAKE_SECONDS = 10.0
TLS_HANDSHAKE = b"\x16"  # the content type of a TLS handshake record, a ClientHello's first byte


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            raise HttpError(400, "request body is not valid JSON") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """A chunked response; `chunks` is closed (and so cancelled) if the client disconnects."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)


Reply = Response | StreamResponse
Handler = Callable[[Request], Awaitable[Reply]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status=status, body=json.dumps(data, separators=(",", ":")).encode())


def text_response(text: str, status: int = 200) -> Response:
    return Response(status=status, body=text.encode(), content_type="text/plain")


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """`pattern` is a path; `{name}` matches one segment, `{name*}` the rest."""
        regex = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def extend(self, other: Router) -> None:
        self._routes.extend(other._routes)

    def find(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        path_known = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match:
                path_known = True
                if route_method == method:
                    return handler, match.groupdict(), True
        return None, {}, path_known


Gate = Callable[[Request], Awaitable[Response | None]]


class HttpServer:
    def __init__(self, router: Router, gate: Gate | None = None) -> None:
        self.router = router
        self.gate = gate
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.StreamWriter] = set()

    async def listen(self, host: str, port: int, ssl: ssl_module.SSLContext | None = None) -> None:
        """Serve on host:port; with `ssl`, over TLS. A connection reaches the router only once its
        handshake has succeeded; asyncio closes one whose handshake fails or takes longer than
        HANDSHAKE_SECONDS, and nothing else sees it."""
        server = await asyncio.start_server(
            self._serve,
            host,
            port,
            limit=MAX_HEAD,
            reuse_address=True,
            ssl=ssl,
            ssl_handshake_timeout=HANDSHAKE_SECONDS if ssl is not None else None,
        )
        self._servers.append(server)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._connections):
            writer.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                try:
                    request, keep_alive = await asyncio.wait_for(_read_request(reader), IDLE_SECONDS)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                except HttpError as exc:
                    await _write_response(writer, json_response({"error": str(exc)}, exc.status), False)
                    return
                except asyncio.LimitOverrunError:
                    await _write_response(writer, json_response({"error": "header too large"}, 431), False)
                    return
                reply = await self._dispatch(request)
                if isinstance(reply, StreamResponse):
                    await _write_stream(writer, reply)
                    if not keep_alive:
                        return
                    continue
                await _write_response(writer, reply, keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _dispatch(self, request: Request) -> Reply:
        try:
            if self.gate is not None:
                gated = await self.gate(request)
                if gated is not None:
                    return gated
            handler, params, known = self.router.find(request.method, request.path)
            if handler is None:
                status = 405 if known else 404
                return json_response({"error": HTTPStatus(status).phrase, "error_type": "NotFoundError"}, status)
            request.params = params
            return await handler(request)
        except HttpError as exc:
            return json_response({"error": str(exc), "error_type": HTTPStatus(exc.status).phrase}, exc.status)


async def _read_request(reader: asyncio.StreamReader) -> tuple[Request, bool]:
    first = await reader.readexactly(1)
    if first == TLS_HANDSHAKE:
        # A TLS ClientHello on a plain listener. MindIE's server (cpp-httplib, read timeout 60 s,
        # MindIE-LLM http_server.cpp) answers 400 if the hello happens to hold a newline byte,
        # else says nothing until the client gives up. Either way the handshake fails; here it
        # fails at once, as if the newline were always there.
        raise HttpError(400, "malformed request line")
    head = first + await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "malformed header")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise HttpError(400, "bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            raise HttpError(413, "request body too large")
        body = await reader.readexactly(length) if length else b""
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    split = urlsplit(target)
    request = Request(
        method=method.upper(),
        path=split.path or "/",
        query=dict(parse_qsl(split.query, keep_blank_values=True)),
        headers=headers,
        body=body,
    )
    return request, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "bad chunk size") from None
        if size == 0:
            await reader.readuntil(b"\r\n")
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise HttpError(413, "request body too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write_response(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
    headers = {"Content-Length": str(len(response.body))}
    if response.content_type and response.body:
        headers["Content-Type"] = response.content_type
    headers.update(response.headers)
    if not keep_alive:
        headers["Connection"] = "close"
    writer.write(_head(response.status, headers) + response.body)
    await writer.drain()


async def _write_stream(writer: asyncio.StreamWriter, response: StreamResponse) -> None:
    headers = {"Content-Type": response.content_type, "Transfer-Encoding": "chunked", "Cache-Control": "no-cache"}
    headers.update(response.headers)
    chunks = response.chunks
    try:
        writer.write(_head(response.status, headers))
        await writer.drain()
        async for chunk in chunks:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
