"""A simulated PD stack with TLS switched on: certificates written where the simulated binaries
look for them, the planned configs pointed at them, and clients that speak TLS to the listeners.

Server files live under the Server's home (the simulated host's root: `mindie_llm_server` sets
MINDIE_LLM_HOME_PATH to the bin folder's parent) as `security/...`; Controller and Coordinator
files under their working folders as `./security/<pair>/...`.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.certs import Issued, make_ca, make_leaf, write_pem
from tests.simstack import Stack

PLANES = ("business", "management", "metrics")
SERVER_FIELDS = {
    "business": ("tlsCaFile", "tlsCert", "tlsPk", "tlsCrlPath", "tlsCrlFiles"),
    "management": ("managementTlsCaFile", "managementTlsCert", "managementTlsPk", "managementTlsCrlPath",
                   "managementTlsCrlFiles"),
    "metrics": ("metricsTlsCaFile", "metricsTlsCert", "metricsTlsPk", "metricsTlsCrlPath", "metricsTlsCrlFiles"),
}  # fmt: skip
CONTROLLER_PAIRS = ("request_coordinator", "request_server", "http_server", "external_coordinator")
COORDINATOR_PAIRS = (
    "controller_server",
    "request_server",
    "mindie_client",
    "mindie_mangment",
    "etcd_server",
    "alarm_client",
    "external",
    "status",
)


class Pki:
    """One CA and the leaves of the stack (RSA-3072, SAN 127.0.0.1 + localhost)."""

    def __init__(self) -> None:
        self.ca = make_ca()
        self._leaves: dict[str, Issued] = {}

    def leaf(self, name: str) -> Issued:
        if name not in self._leaves:
            self._leaves[name] = make_leaf(self.ca, name=name)
        return self._leaves[name]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def save(path: Path, data: dict[str, Any]) -> None:
    mode = path.stat().st_mode & 0o777
    path.chmod(0o600)
    path.write_text(json.dumps(data, indent=2))
    path.chmod(mode)


def write_server_files(home: Path, pki: Pki, planes: tuple[str, ...] = PLANES, mode: int = 0o400) -> None:
    """security/ca/ca.pem and one certificate + key per plane, named after it."""
    write_pem(home / "security" / "ca" / "ca.pem", pki.ca.cert_pem, mode)
    for plane in planes:
        leaf = pki.leaf(plane)
        write_pem(home / "security" / "certs" / f"{plane}.pem", leaf.cert_pem, mode)
        write_pem(home / "security" / "keys" / f"{plane}.key.pem", leaf.key_pem(), mode)


def write_intercomm_files(home: Path, pki: Pki, mode: int = 0o400) -> None:
    write_pem(home / "security" / "grpc" / "ca" / "ca.pem", pki.ca.cert_pem, mode)
    leaf = pki.leaf("grpc")
    write_pem(home / "security" / "grpc" / "certs" / "server.pem", leaf.cert_pem, mode)
    write_pem(home / "security" / "grpc" / "keys" / "server.key.pem", leaf.key_pem(), mode)


def server_tls_fields(https: bool = True, intercomm: bool = True) -> dict[str, Any]:
    fields: dict[str, Any] = {"httpsEnabled": https, "interCommTLSEnabled": intercomm, "tlsCaPath": "security/ca/"}
    for plane, (ca, cert, key, crl_path, crl_files) in SERVER_FIELDS.items():
        fields |= {
            ca: ["ca.pem"],
            cert: f"security/certs/{plane}.pem",
            key: f"security/keys/{plane}.key.pem",
            crl_path: "",
            crl_files: [],
        }
    fields |= {
        "interCommTlsCaPath": "security/grpc/ca/",
        "interCommTlsCaFiles": ["ca.pem"],
        "interCommTlsCert": "security/grpc/certs/server.pem",
        "interCommPk": "security/grpc/keys/server.key.pem",
        "interCommTlsCrlPath": "",
        "interCommTlsCrlFiles": [],
    }
    return fields


def write_motor_files(
    folder: Path, pki: Pki, pair: str, mode: int = 0o400, passwd: bytes = b"dummy\n"
) -> dict[str, str]:
    """The items of one pair under `folder`/security/<pair>/, with paths relative to `folder`."""
    leaf = pki.leaf(f"motor-{pair}")
    base = Path("security") / pair
    files = {
        "ca_cert": (base / "ca.pem", pki.ca.cert_pem),
        "tls_cert": (base / "cert.pem", leaf.cert_pem),
        "tls_key": (base / "cert.key.pem", leaf.key_pem()),
        "tls_passwd": (base / "key_pwd.txt", passwd),
    }
    for relative, data in files.values():
        write_pem(folder / relative, data, mode)
    return {key: f"./{relative}" for key, (relative, _) in files.items()} | {"tls_crl": ""}


def set_motor_pairs(path: Path, folder: Path, pki: Pki, pairs: dict[str, bool]) -> None:
    """Switch `pairs` of the Motor config at `path` on or off; the ones on get files in `folder`."""
    data = load(path)
    for pair, on in pairs.items():
        data["tls_config"][f"{pair}_tls_enable"] = on
        if on:
            data["tls_config"][f"{pair}_tls_items"] = write_motor_files(folder, pki, pair)
    save(path, data)


# --- clients ----------------------------------------------------------------------------------


def client_context(
    ca: Issued | None,
    leaf: Issued | None,
    folder: Path,
    tls12: bool = False,
    password: bytes | None = None,
    weak: bool = False,
) -> ssl.SSLContext:
    """A test client: trusts `ca` (or nothing), offers `leaf` (or no certificate), TLS 1.3 unless
    `tls12` (then TLS 1.2 only); `weak` lowers its own OpenSSL security level to 0, so that it can
    offer keys the listener should refuse. No host name check: the listeners are dialled by IP."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    if weak:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if tls12:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        context.load_verify_locations(cadata=ca.cert_pem.decode())
    else:
        context.verify_mode = ssl.CERT_NONE
    if leaf is not None:
        name = f"client-{leaf.serial}"
        cert = write_pem(folder / f"{name}.pem", leaf.cert_pem, 0o600)
        key = write_pem(folder / f"{name}.key", leaf.key_pem(password), 0o600)
        context.load_cert_chain(str(cert), str(key), password)
    return context


def https(
    port: int, path: str, context: ssl.SSLContext, method: str = "GET", body: Any = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One request over TLS to 127.0.0.1:port; (0, b"") when the connection or handshake fails."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        connection.close()


def handshake(port: int, context: ssl.SSLContext, timeout: float = 10.0) -> str:
    """'ok' if a TLS session comes up *and* the server keeps it (a TLS 1.3 server refuses a client
    certificate only after the client's side of the handshake is done), else the error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if not tls.recv(1):
                return "closed"
            return "ok"
    except (OSError, ssl.SSLError) as exc:
        return f"{type(exc).__name__}: {exc}"


def peer_certificate(port: int, context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True) or b""


class TlsStack(Stack):
    """A Stack whose test clients speak TLS where `secure` says (plane or pair -> on)."""

    def __init__(self, tmp_path: Path, **kwargs: Any) -> None:
        super().__init__(tmp_path, **kwargs)
        self.pki = Pki()
        self.clients = tmp_path / "clients"
        self.client = client_context(self.pki.ca, self.pki.leaf("test-client"), self.clients)
        self.secure: dict[str, bool] = {}

    def _get(self, on: str, port: int, path: str, method: str = "GET", body: Any = None) -> tuple[int, bytes]:
        if self.secure.get(on):
            return https(port, path, self.client, method, body)
        from tests.simstack import http

        return http(method, f"http://127.0.0.1:{port}{path}", body)

    def mgmt(self, index: int, path: str, method: str = "GET", body: Any = None) -> tuple[int, bytes]:
        return self._get("management", self.server_ports(index)["management"], path, method, body)

    def status(self, path: str) -> tuple[int, bytes]:
        return self._get("status", self.ports.status, path)

    def edit_servers(self, change: Callable[[dict[str, Any]], None]) -> None:
        for index in range(1, len(self.plan["servers"]) + 1):
            path = self.out / f"config{index}.json"
            data = load(path)
            change(data["ServerConfig"])
            save(path, data)
