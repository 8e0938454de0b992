"""Reaching a running supervisor: its local Unix socket (no token needed there) or, with `--url`,
its HTTP port (control then needs SUPERVISOR_PD_API_TOKEN or _TOKEN_FILE). Standard library only:
`probe` runs as a Kubernetes exec probe and must stay well under 100 ms."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from supervisor_pd import unixsock

OK, FAILED, BAD_INPUT = 0, 1, 2


class ClientError(Exception):
    """Could not talk to the supervisor at all."""


class Unreachable(ClientError):
    """Nothing listens where the supervisor would: it is not running (or not yet)."""


def _env(name: str) -> str | None:
    """A SUPERVISOR_PD_* variable, in any case, as the settings read them."""
    value = os.environ.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in os.environ.items() if k.lower() == lowered), None)
    return value or None


def socket_path() -> Path:
    """Where `supervisor-pd run` put its control socket, from the same settings it reads."""
    explicit = _env("SUPERVISOR_PD_API_SOCKET")
    if explicit:
        return Path(explicit)
    state = _env("SUPERVISOR_PD_STATE_DIR")
    if state is None:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        state = str(Path(base) / "supervisor-pd")
    return Path(state) / "api.sock"


def _token() -> str | None:
    token = _env("SUPERVISOR_PD_API_TOKEN")
    if token:
        return token
    path = _env("SUPERVISOR_PD_API_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise ClientError(f"SUPERVISOR_PD_API_TOKEN_FILE: {path} cannot be read: {exc.strerror}") from None
    return None


def _quote(name: str) -> str:
    """A path segment: anything but unreserved characters percent-encoded."""
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    return "".join(ch if ch in safe else "".join(f"%{b:02X}" for b in ch.encode()) for ch in name)


def _head(data: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = data.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ClientError("the reply is not HTTP")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    return int(parts[1]), headers


def _read_reply(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of an HTTP/1.1 reply to a request sent with `Connection: close`."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        raise ClientError("the reply is not HTTP")
    status, headers = _head(head)
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        decoded = bytearray()
        while body:
            size_line, _, rest = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded += rest[:size]
            body = rest[size + 2 :]
        body = bytes(decoded)
    return status, body


def _chunks(reader: BinaryIO) -> Iterator[bytes]:
    """The chunks of a chunked body as they arrive; ends at the last chunk or when the peer closes."""
    while True:
        size_line = reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        data = reader.read(size)
        reader.read(2)
        if len(data) < size:
            return
        yield data


class Api:
    """One supervisor, reached through its socket or a URL."""

    def __init__(self, url: str | None, timeout: float) -> None:
        self.timeout = timeout
        self.address: tuple[str, int] | None = None
        if url is None:
            self.where = str(socket_path())
            return
        self.where = url
        rest = url[len("http://") :] if url.startswith("http://") else ""
        host, _, port = rest.rstrip("/").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
            raise ValueError(f"--url must look like http://HOST:PORT, not {url!r}")
        self.address = (host.strip("[]"), int(port))

    def _connect(self) -> socket.socket:
        if self.address is None:
            return unixsock.connect(socket_path(), self.timeout)
        return socket.create_connection(self.address, self.timeout)

    def _request(self, method: str, path: str) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close", "Content-Length: 0"]
        if self.address is not None:  # control and logs need it on TCP
            token = _token()
            if token:
                lines.append(f"Authorization: Bearer {token}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def call(self, method: str, path: str) -> tuple[int, bytes]:
        try:
            with self._connect() as sock:
                sock.sendall(self._request(method, path))
                return _read_reply(sock)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise Unreachable(self._nobody(exc)) from None
        except TimeoutError:
            raise ClientError(f"no answer from the supervisor at {self.where} within {self.timeout:g} s") from None
        except OSError as exc:
            raise ClientError(f"cannot reach the supervisor at {self.where}: {exc.strerror or exc}") from None
        except ValueError:
            raise ClientError(f"the reply from {self.where} is not valid HTTP") from None

    def _nobody(self, exc: OSError) -> str:
        if isinstance(exc, FileNotFoundError):
            return (
                f"no supervisor socket at {self.where}: is `supervisor-pd run` running with the same "
                "SUPERVISOR_PD_STATE_DIR (or SUPERVISOR_PD_API_SOCKET)?"
            )
        return f"cannot reach the supervisor at {self.where}: {exc.strerror or exc}"

    def json(self, method: str, path: str) -> tuple[int, Any]:
        status, body = self.call(method, path)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, {"error": body.decode(errors="replace")[:200]}

    def stream(self, path: str) -> tuple[int, Iterator[bytes]]:
        """GET `path` and its body as it arrives: chunks of a streamed reply, or the whole body of
        any other. The request has `timeout`; the stream then waits as long as it must."""
        try:
            sock = self._connect()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise Unreachable(self._nobody(exc)) from None
        except OSError as exc:
            raise ClientError(f"cannot reach the supervisor at {self.where}: {exc.strerror or exc}") from None
        try:
            sock.sendall(self._request("GET", path))
            reader = sock.makefile("rb")
            head = bytearray()
            while not head.endswith(b"\r\n\r\n"):
                line = reader.readline()
                if not line:
                    raise ClientError(f"the reply from {self.where} is not HTTP")
                head += line
            status, headers = _head(bytes(head[:-4]))
        except TimeoutError:
            sock.close()
            raise ClientError(f"no answer from the supervisor at {self.where} within {self.timeout:g} s") from None
        except OSError as exc:
            sock.close()
            raise ClientError(f"cannot reach the supervisor at {self.where}: {exc.strerror or exc}") from None
        except ClientError:
            sock.close()
            raise
        sock.settimeout(None)
        return status, self._body(sock, reader, headers)

    @staticmethod
    def _body(sock: socket.socket, reader: BinaryIO, headers: dict[bytes, bytes]) -> Iterator[bytes]:
        with sock, reader:
            try:
                if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                    yield from _chunks(reader)
                else:
                    yield reader.read()
            except (OSError, ValueError):
                return  # the supervisor went away mid-stream: its log ends there


def error_of(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        return error.get("message", str(error)) if isinstance(error, dict) else str(error)
    return str(body)
