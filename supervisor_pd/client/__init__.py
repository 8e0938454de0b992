"""The operator commands: `probe`, `status`, `logs`, `restart` and `drain`.

They talk to a running supervisor over its local Unix socket (no token needed there) or, with
`--url`, over its HTTP port (control then needs SUPERVISOR_PD_API_TOKEN or _TOKEN_FILE).
Standard library only: `probe` runs as a Kubernetes exec probe and must finish well under
100 ms, so nothing heavy (pydantic, aiohttp) is imported on this path.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from supervisor_pd import unixsock
from supervisor_pd.client.status import status_table

PROBES = {"startup": "/startupz", "readiness": "/readyz", "liveness": "/livez"}
COMMANDS = ("probe", "status", "logs", "restart", "drain", "renew-tls")
OK, FAILED, BAD_INPUT = 0, 1, 2


class ClientError(Exception):
    """Could not talk to the supervisor at all."""


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


def _read_reply(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of an HTTP/1.1 reply to a request sent with `Connection: close`."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ClientError("the reply is not HTTP")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
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
    return int(parts[1]), body


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

    def call(self, method: str, path: str) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close", "Content-Length: 0"]
        if self.address is not None:  # control and logs need it on TCP
            token = _token()
            if token:
                lines.append(f"Authorization: Bearer {token}")
        try:
            with self._connect() as sock:
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                return _read_reply(sock)
        except FileNotFoundError:
            raise ClientError(
                f"no supervisor socket at {self.where}: is `supervisor-pd run` running with the same "
                "SUPERVISOR_PD_STATE_DIR (or SUPERVISOR_PD_API_SOCKET)?"
            ) from None
        except TimeoutError:
            raise ClientError(f"no answer from the supervisor at {self.where} within {self.timeout:g} s") from None
        except OSError as exc:
            raise ClientError(f"cannot reach the supervisor at {self.where}: {exc.strerror or exc}") from None
        except ValueError:
            raise ClientError(f"the reply from {self.where} is not valid HTTP") from None

    def json(self, method: str, path: str) -> tuple[int, Any]:
        status, body = self.call(method, path)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, {"error": body.decode(errors="replace")[:200]}


def _error(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        return error.get("message", str(error)) if isinstance(error, dict) else str(error)
    return str(body)


# --- commands ----------------------------------------------------------------------------------


def cmd_probe(api: Api, args: argparse.Namespace) -> int:
    path = PROBES[args.kind] + ("?verbose" if args.verbose else "")
    last = ""
    for attempt in range(args.retries + 1):
        try:
            status, body = api.call("GET", path)
        except ClientError as exc:
            last = str(exc)
        else:
            if status == 200:
                if args.verbose:
                    sys.stdout.write(body.decode(errors="replace"))
                return OK
            last = body.decode(errors="replace").strip() or f"HTTP {status}"
        if attempt < args.retries:
            time.sleep(min(1.0, args.timeout))
    sys.stderr.write(f"{args.kind} probe failed: {last}\n")
    return FAILED


def cmd_status(api: Api, args: argparse.Namespace) -> int:
    status, body = api.json("GET", "/v1/status")
    if status != 200:
        sys.stderr.write(f"status: {_error(body)}\n")
        return FAILED
    if args.json:
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        sys.stdout.write(status_table(body, time.time()))
    return OK


def cmd_logs(api: Api, args: argparse.Namespace) -> int:
    name = _quote(args.name)
    status, body = api.json("GET", f"/v1/processes/{name}/logs?tail={args.lines}")
    while True:
        if status == 404:
            sys.stderr.write(f"logs: {_error(body)}\n")
            return BAD_INPUT
        if status != 200:
            sys.stderr.write(f"logs: {_error(body)}\n")
            return FAILED
        for line in body["lines"]:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if not args.follow:
            return OK
        time.sleep(args.interval)
        following = body["next"]
        try:
            status, body = api.json("GET", f"/v1/processes/{name}/logs?tail=1000&after={following}")
        except ClientError:
            return OK  # the supervisor has stopped: so has its log
        if status == 200 and body["next"] - following > len(body["lines"]):
            sys.stdout.write(f"... {body['next'] - following - len(body['lines'])} lines skipped ...\n")


def cmd_restart(api: Api, args: argparse.Namespace) -> int:
    status, body = api.json("POST", f"/v1/processes/{_quote(args.name)}/restart")
    if status == 202:
        sys.stdout.write(f"{args.name}: restarting\n")
        return OK
    sys.stderr.write(f"restart: {_error(body)}\n")
    return BAD_INPUT if status == 404 else FAILED


def cmd_drain(api: Api, args: argparse.Namespace) -> int:
    status, body = api.json("POST", "/v1/drain")
    if status != 202:
        sys.stderr.write(f"drain: {_error(body)}\n")
        return FAILED
    sys.stdout.write(f"supervisor: {body['result']}\n")
    if not args.wait:
        return OK
    deadline = time.monotonic() + args.wait_timeout
    while time.monotonic() < deadline:
        try:
            api.call("GET", "/livez")
        except ClientError:
            sys.stdout.write("supervisor: stopped\n")
            return OK
        time.sleep(0.2)
    sys.stderr.write(f"drain: the supervisor was still running after {args.wait_timeout:g} s\n")
    return FAILED


def cmd_renew_tls(api: Api, args: argparse.Namespace) -> int:
    status, body = api.json("POST", "/v1/tls/renew")
    if status != 202:
        sys.stderr.write(f"renew-tls: {_error(body)}\n")
        return FAILED
    sys.stdout.write("supervisor: renewing the pod certificate; each process restarts in turn to load it\n")
    return OK


HANDLERS = {
    "probe": cmd_probe,
    "status": cmd_status,
    "logs": cmd_logs,
    "restart": cmd_restart,
    "drain": cmd_drain,
    "renew-tls": cmd_renew_tls,
}


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 600 seconds, not {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 0 <= value <= 30:
        raise argparse.ArgumentTypeError(f"must be between 0 and 30, not {text}")
    return value


def _lines(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, not {text}")
    return value


def add_commands(commands: Any) -> None:
    """The client's subcommands, added to `supervisor-pd`'s parser."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--url", help="talk to the HTTP port at this URL instead of the local socket")
    where.add_argument("--timeout", type=_positive, default=2.0, help="seconds allowed per request (default 2)")

    probe = commands.add_parser(
        "probe",
        parents=[where],
        help="exec probe: exit 0 if the check passes, 1 if not",
        description="Ask the running supervisor for its startup, readiness or liveness check.",
    )
    probe.add_argument("kind", choices=sorted(PROBES))
    probe.add_argument("--retries", type=_count, default=0, help="extra attempts after a failure (0-30)")
    probe.add_argument("--verbose", action="store_true", help="print each check and its result")

    status = commands.add_parser("status", parents=[where], help="every process: state, pid, ports, health")
    status.add_argument("--json", action="store_true", help="print the raw status document")

    logs = commands.add_parser("logs", parents=[where], help="a process's recent output")
    logs.add_argument("name", help="process name, as `supervisor-pd status` shows it (or `supervisor`)")
    logs.add_argument("-n", "--lines", type=_lines, default=100, help="how many recent lines (1-1000, default 100)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--interval", type=_positive, default=0.5, help=argparse.SUPPRESS)

    restart = commands.add_parser("restart", parents=[where], help="restart one process")
    restart.add_argument("name", help="process name, as `supervisor-pd status` shows it")

    drain = commands.add_parser("drain", parents=[where], help="refuse new requests, finish those in flight, stop")
    drain.add_argument("--wait", action="store_true", help="return only when the supervisor has stopped")
    drain.add_argument("--wait-timeout", type=_positive, default=600.0, help="seconds to wait with --wait")

    commands.add_parser(
        "renew-tls",
        parents=[where],
        help="renew the generated pod certificate now; each process restarts in turn to load it",
    )


def run(args: argparse.Namespace) -> int:
    try:
        api = Api(args.url, args.timeout)
        return HANDLERS[args.command](api, args)
    except ValueError as exc:
        sys.stderr.write(f"supervisor-pd: error: {exc}\n")
        return BAD_INPUT
    except ClientError as exc:
        sys.stderr.write(f"supervisor-pd {args.command}: {exc}\n")
        return FAILED
    except KeyboardInterrupt:
        return 130
