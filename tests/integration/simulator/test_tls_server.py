"""The simulated Server's TLS, against MindIE-LLM's checks (supervisor_pd/simulator/server/tlsconf.py,
tlsstart.py): HTTPS listeners in TLS 1.3 mutual TLS with their own certificates, what a file
refused at config time does (exit 1), what a certificate refused at start does (the endpoint
fails: the group is killed), CRLs, the Server home, and the P->D link's start checks.

Every refusal case of those checks is in tests/unit/simulator/test_tls_refusals.py, in-process;
here one case of each kind shows what it does to the process."""

from __future__ import annotations

import contextlib
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.certs import Issued, days, make_ca, make_crl, make_leaf, write_pem
from tests.integration.simulator.tlsstack import (
    TlsStack,
    client_context,
    handshake,
    load,
    peer_certificate,
    save,
    server_tls_fields,
    write_intercomm_files,
    write_server_files,
)
from tests.simstack import http, wait_until


def https_server(make_tls_stack, intercomm: bool = False) -> TlsStack:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    write_server_files(stack.host, stack.pki)
    if intercomm:
        write_intercomm_files(stack.host, stack.pki)
    stack.edit_servers(lambda server: server.update(server_tls_fields(https=True, intercomm=intercomm)))
    stack.secure = {"management": True}
    return stack


def refused(stack: TlsStack, index: int = 1, **env: str) -> tuple[int, str]:
    """Start server-`index`, wait for it to end; (exit status, its log)."""
    process = stack.start_server(index, env=env or None)
    return process.wait(30), stack.log(f"server-{index}")


def common_name(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def with_crl(stack: TlsStack, crl: bytes) -> None:
    write_pem(stack.host / "security" / "crl" / "server_crl.pem", crl, 0o400)
    stack.edit_servers(
        lambda server: server.update(managementTlsCrlPath="security/crl/", managementTlsCrlFiles=["server_crl.pem"])
    )


@dataclass(frozen=True)
class Shared:
    """One started HTTPS Server for the tests that only make handshakes: every plane on its own
    set, and on management a CRL that revokes `revoked`. `baseline`: its open file descriptors
    once it answered, before any test."""

    stack: TlsStack
    revoked: Issued
    fds: Path
    baseline: int

    def open_fds(self) -> int:
        return len(list(self.fds.iterdir()))


@pytest.fixture(scope="module")
def shared(make_module_tls_stack) -> Shared:  # type: ignore[no-untyped-def]
    stack = https_server(make_module_tls_stack)
    revoked = make_leaf(stack.pki.ca, name="revoked")
    with_crl(stack, make_crl(stack.pki.ca, revoked=[revoked]))
    process = stack.start_server(1)
    stack.wait_server_up(1)
    fds = Path(f"/proc/{process.pid}/fd")
    return Shared(stack, revoked, fds, len(list(fds.iterdir())))


def test_each_listener_is_tls13_mutual_tls_with_its_own_certificate(shared: Shared, tmp_path: Path) -> None:
    stack = shared.stack
    ports = stack.server_ports(1)
    other = make_ca(name="another CA")
    clients = {
        "TLS 1.2": client_context(stack.pki.ca, stack.pki.leaf("test-client"), tmp_path, tls12=True),
        "no certificate": client_context(stack.pki.ca, None, tmp_path),
        "another CA's certificate": client_context(stack.pki.ca, make_leaf(other, name="intruder"), tmp_path),
    }
    for plane, port in (
        ("business", ports["port"]),
        ("management", ports["management"]),
        ("metrics", ports["metrics"]),
    ):
        assert handshake(port, stack.client) == "ok", plane
        assert common_name(peer_certificate(port, stack.client)) == plane  # the plane's own set
        for what, context in clients.items():
            assert handshake(port, context) != "ok", f"{plane} accepted a client with {what}"
        assert http("GET", f"http://127.0.0.1:{port}/v1/config", timeout=5)[0] == 0, f"{plane} answered plain HTTP"
    assert stack.mgmt(1, "/v1/config")[0] == 200


def test_failed_handshakes_leave_nothing_behind(shared: Shared, tmp_path: Path) -> None:
    stack = shared.stack
    port = stack.server_ports(1)["management"]
    # The connections of the module's earlier tests are closed too: back to the count taken
    # when the Server first answered.
    wait_until(lambda: shared.open_fds() <= shared.baseline, timeout=20, what="earlier connections to be closed")
    anonymous = client_context(stack.pki.ca, None, tmp_path)
    for _ in range(30):
        assert handshake(port, anonymous) != "ok"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, contextlib.suppress(OSError):
            raw.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP to a TLS port
            assert raw.recv(100) == b""
    wait_until(lambda: shared.open_fds() <= shared.baseline, timeout=20, what="the refused connections to be closed")
    assert stack.processes["server-1"].poll() is None
    assert stack.mgmt(1, "/v1/config")[0] == 200


def test_a_revoked_client_is_refused(shared: Shared, tmp_path: Path) -> None:
    ports = shared.stack.server_ports(1)
    revoked = client_context(shared.stack.pki.ca, shared.revoked, tmp_path)
    assert handshake(ports["management"], revoked) != "ok"
    assert handshake(ports["management"], shared.stack.client) == "ok"
    assert handshake(ports["port"], revoked) == "ok"  # business has no CRL


# --- config time: exit 1 ---------------------------------------------------------------------


def test_a_file_refused_at_config_time_ends_the_server(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # One of CONFIG_REFUSALS in tests/unit/simulator/test_tls_refusals.py.
    stack = https_server(make_tls_stack)
    (stack.host / "security" / "certs" / "business.pem").chmod(0o644)
    status, log = refused(stack)
    assert status == 1, log
    assert "Check path: business.pem failed, by: Check Other group permission failed" in log
    assert "Daemon start success!" not in log


def test_one_listener_needs_only_the_business_set(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack = https_server(make_tls_stack)
    port = stack.server_ports(1)["port"]

    def one_port(server: dict[str, Any]) -> None:
        server.update(managementPort=port, metricsPort=port)
        for key in [k for k in server if k.startswith(("managementTls", "metricsTls"))]:
            del server[key]

    stack.edit_servers(one_port)
    stack.start_server(1)
    wait_until(lambda: handshake(port, stack.client) == "ok", what="the single TLS listener")
    assert common_name(peer_certificate(port, stack.client)) == "business"


# --- start: the endpoint fails, the group is killed --------------------------------------------


def test_a_certificate_refused_at_start_fails_the_endpoint(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # One of START_REFUSALS in tests/unit/simulator/test_tls_refusals.py: management's, after
    # business's set was made.
    stack = https_server(make_tls_stack)
    leaf = make_leaf(stack.pki.ca, key="rsa2048")
    write_pem(stack.host / "security" / "certs" / "management.pem", leaf.cert_pem, 0o400)
    write_pem(stack.host / "security" / "keys" / "management.key.pem", leaf.key_pem(), 0o400)
    status, log = refused(stack)
    assert status == -signal.SIGKILL, log
    assert "Certificate key length is too short, key length < 3072" in log
    assert "Failed to init endpoint!" in log


# --- CRLs ------------------------------------------------------------------------------------


def test_an_expired_crl_is_a_warning_and_then_every_client_is_refused(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # HttpSsl::CaVerifyCallback only warns; X509_verify_cert with CRL_CHECK then fails.
    stack = https_server(make_tls_stack)
    with_crl(stack, make_crl(stack.pki.ca, next_update=days(-1)))
    process = stack.start_server(1)
    port = stack.server_ports(1)["management"]
    wait_until(lambda: "Daemon start success!" in stack.log("server-1"), what="the Server to start")
    assert "The crl [cert revocation list] has expired!" in stack.log("server-1")
    assert handshake(port, stack.client) != "ok"
    assert handshake(stack.server_ports(1)["port"], stack.client) == "ok"  # business has no CRL
    assert process.poll() is None


# --- the Server home ---------------------------------------------------------------------------


def test_the_launcher_makes_the_bin_folders_parent_the_home(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = https_server(make_tls_stack)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # mindie_llm_server sets MINDIE_LLM_HOME_PATH itself: MIES_INSTALL_PATH does not move the home.
    stack.start_server(1, env={"MIES_INSTALL_PATH": str(elsewhere)})
    stack.wait_server_up(1)
    stack.kill("server-1")
    # The daemon started directly takes MIES_INSTALL_PATH, where no certificate is.
    argv = ["mindieservice_daemon", "--config-file", str(stack.out / "config1.json")]
    process = stack._start("daemon", argv, {**stack.env, "MIES_INSTALL_PATH": str(elsewhere)}, stack.tmp, False)
    assert process.wait(30) == 1
    assert "The serverConfig_.tlsCert path is invalid by: The input file: business.pem is not a regular file" in (
        stack.log("daemon")
    )


# --- the P->D link at start ----------------------------------------------------------------


def intercomm_server(make_tls_stack) -> TlsStack:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    write_intercomm_files(stack.host, stack.pki)
    stack.edit_servers(lambda server: server.update(server_tls_fields(https=False, intercomm=True)))
    return stack


def test_the_link_refused_at_start_fails_the_endpoint(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # One of INTERCOMM_REFUSALS in tests/unit/simulator/test_tls_refusals.py: interCommTLSEnabled
    # absent means true, so the link's (absent) files are checked.
    stack = intercomm_server(make_tls_stack)
    stack.edit_servers(
        lambda server: [server.pop(key) for key in list(server) if key.startswith("interComm") and "Port" not in key]
    )
    status, log = refused(stack)
    assert status == -signal.SIGKILL, log
    assert "Tls ca file is empty" in log
    assert "Failed to start grpc wrapper in DMI scene." in log


@pytest.fixture(scope="module")
def plain(make_module_tls_stack) -> TlsStack:  # type: ignore[no-untyped-def]
    """Two plain Servers, no interComm file at all: server-1 with interCommTLSEnabled false,
    server-2 in standard mode without it (absent means true)."""
    stack: TlsStack = make_module_tls_stack()
    for index, change in (
        (1, lambda server: server.update(interCommTLSEnabled=False)),
        (2, lambda server: (server.pop("interCommTLSEnabled", None), server.update(inferMode="standard"))),
    ):
        path = stack.out / f"config{index}.json"
        data = load(path)
        change(data["ServerConfig"])
        save(path, data)
        stack.start_server(index)
    for index in (1, 2):
        stack.wait_server_up(index)
    return stack


def test_the_link_is_not_checked_when_switched_off_or_in_standard_mode(plain: TlsStack) -> None:
    assert "interCommTLSEnabled" not in load(plain.out / "config2.json")["ServerConfig"]
    for index in (1, 2):
        assert plain.processes[f"server-{index}"].poll() is None
        assert plain.mgmt(index, "/v1/config")[0] == 200


def test_a_tls_client_does_not_reach_a_plain_server(plain: TlsStack) -> None:
    port = plain.server_ports(1)["management"]
    assert handshake(port, plain.client) != "ok"  # the plain listener answers 400 to a ClientHello
    assert plain.mgmt(1, "/v1/config")[0] == 200
