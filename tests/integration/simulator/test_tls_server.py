"""The simulated Server's TLS, against MindIE-LLM's checks (supervisor_pd/simulator/server/tlsconf.py,
tlsstart.py): HTTPS listeners in TLS 1.3 mutual TLS with their own certificates, the config-time
file checks (exit 1), the start-time certificate checks (the endpoint fails: the group is killed),
CRLs, the Server home, and the P->D link's start checks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.certs import days, make_ca, make_crl, make_leaf, write_pem
from tests.integration.simulator.tlsstack import (
    TlsStack,
    client_context,
    handshake,
    peer_certificate,
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


def test_each_listener_is_tls13_mutual_tls_with_its_own_certificate(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = https_server(make_tls_stack)
    stack.start_server(1)
    stack.wait_server_up(1)
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


def test_failed_handshakes_leave_nothing_behind(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = https_server(make_tls_stack)
    process = stack.start_server(1)
    stack.wait_server_up(1)
    port = stack.server_ports(1)["management"]
    fds = Path(f"/proc/{process.pid}/fd")
    before = len(list(fds.iterdir()))
    anonymous = client_context(stack.pki.ca, None, tmp_path)
    for _ in range(30):
        assert handshake(port, anonymous) != "ok"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, contextlib.suppress(OSError):
            raw.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP to a TLS port
            assert raw.recv(100) == b""
    wait_until(lambda: len(list(fds.iterdir())) <= before, timeout=20, what="the refused connections to be closed")
    assert process.poll() is None
    assert stack.mgmt(1, "/v1/config")[0] == 200


# --- config time: exit 1 ---------------------------------------------------------------------


def _symlink(home: Path) -> None:
    key = home / "security" / "keys" / "business.key.pem"
    real = home / "security" / "keys" / "real.key.pem"
    key.rename(real)
    key.symlink_to(real)


def _outside(home: Path) -> None:
    write_pem(home.parent / "outside.pem", (home / "security" / "certs" / "business.pem").read_bytes(), 0o400)


CONFIG_REFUSALS: dict[str, tuple[Callable[[Path], None], dict[str, Any], str]] = {
    "tlsCert missing": (lambda home: None, {"tlsCert": None}, "The serverConfig_.tlsCert path is invalid"),
    "no CA file": (lambda home: None, {"tlsCaFile": []}, "serverConfig_.tlsCaFile size must in [1, 3]"),
    "four CA files": (lambda home: None, {"tlsCaFile": ["a", "b", "c", "ca.pem"]}, "tlsCaFile size must in [1, 3]"),
    "CA path not a folder": (lambda home: None, {"tlsCaPath": "security/ca/ca.pem"}, "tlsCaPath path is not a dir"),
    "key is a symbolic link": (_symlink, {}, "business.key.pem is a link."),
    "cert outside the home": (_outside, {"tlsCert": "../outside.pem"}, "it's not in baseDir directory"),
    "cert mode 0644": (
        lambda home: (home / "security" / "certs" / "business.pem").chmod(0o644),
        {},
        "Check path: business.pem failed, by: Check Other group permission failed",
    ),
    "key owned by another user": (
        lambda home: os.chown(home / "security" / "keys" / "business.key.pem", 65534, 65534),
        {},
        "owner id diff: current process user id is 0, file owner id is 65534",
    ),
    "empty cert file": (
        lambda home: write_pem(home / "security" / "certs" / "business.pem", b"", 0o400),
        {},
        "Read input file: business.pem failed, file is too large",
    ),
    "CRL listed but missing": (
        lambda home: (home / "security" / "crl").mkdir(),
        {"tlsCrlPath": "security/crl/", "tlsCrlFiles": ["server_crl.pem"]},
        "serverConfig_.tlsCrlFiles file not exit",
    ),
    "management CA missing": (
        lambda home: None,
        {"managementTlsCaFile": ["management_ca.pem"]},
        "serverConfig_.managementTlsCaFile file not exit",
    ),
}


@pytest.mark.parametrize("case", CONFIG_REFUSALS, ids=list(CONFIG_REFUSALS))
def test_files_refused_at_config_time_end_the_server(make_tls_stack, case: str) -> None:  # type: ignore[no-untyped-def]
    damage, fields, message = CONFIG_REFUSALS[case]
    if case == "key owned by another user" and os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    stack = https_server(make_tls_stack)
    damage(stack.host)

    def change(server: dict[str, Any]) -> None:
        for key, value in fields.items():
            if value is None:
                server.pop(key, None)
            else:
                server[key] = value

    stack.edit_servers(change)
    status, log = refused(stack)
    assert status == 1, log
    assert message in log


def test_mode_is_checked_even_with_the_permission_check_switched_off(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # ParamChecker::CheckPath -> FileUtils::IsFileValid returns false in both branches.
    stack = https_server(make_tls_stack)
    (stack.host / "security" / "keys" / "metrics.key.pem").chmod(0o660)
    status, log = refused(stack, MINDIE_CHECK_INPUTFILES_PERMISSION="0")
    assert status == 1
    assert "The ServerConfig.metricsTlsPk path is invalid by: Check path: metrics.key.pem failed" in log


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


def _replace(plane: str, leaf_maker: Callable[[Any], Any], key_maker: Callable[[Any], bytes] | None = None):  # type: ignore[no-untyped-def]
    def damage(stack: TlsStack) -> None:
        leaf = leaf_maker(stack.pki.ca)
        write_pem(stack.host / "security" / "certs" / f"{plane}.pem", leaf.cert_pem, 0o400)
        key = key_maker(leaf) if key_maker else leaf.key_pem()
        write_pem(stack.host / "security" / "keys" / f"{plane}.key.pem", key, 0o400)

    return damage


START_REFUSALS: dict[str, tuple[Callable[[TlsStack], None], str]] = {
    "EC key": (
        _replace("business", lambda ca: make_leaf(ca, key="ec256")),
        "Certificate key length is too short, key length < 3072",
    ),
    "RSA-2048 key": (
        _replace("management", lambda ca: make_leaf(ca, key="rsa2048")),
        "Certificate key length is too short, key length < 3072",
    ),
    "expired certificate": (
        _replace("metrics", lambda ca: make_leaf(ca, not_before=days(-30), not_after=days(-1))),
        "Certificate has expired! current time after cert time.",
    ),
    "certificate not yet valid": (
        _replace("business", lambda ca: make_leaf(ca, not_before=days(1))),
        "Certificate has expired! current time before cert time.",
    ),
    "key of another certificate": (
        _replace("business", lambda ca: make_leaf(ca), lambda leaf: make_leaf(make_ca()).key_pem()),
        "Failed to set use private key file",
    ),
    "encrypted key": (
        _replace("business", lambda ca: make_leaf(ca), lambda leaf: leaf.key_pem(password=b"secret")),
        "Failed to set use private key file",
    ),
    "CA file holds no certificate": (
        lambda stack: write_pem(stack.host / "security" / "ca" / "ca.pem", b"not a certificate\n", 0o400),
        "TLS load verify file failed",
    ),
}


@pytest.mark.parametrize("case", START_REFUSALS, ids=list(START_REFUSALS))
def test_certificates_refused_at_start_fail_the_endpoint(make_tls_stack, case: str) -> None:  # type: ignore[no-untyped-def]
    damage, message = START_REFUSALS[case]
    stack = https_server(make_tls_stack)
    damage(stack)
    status, log = refused(stack)
    assert status == -signal.SIGKILL, log
    assert message in log
    assert "Failed to init endpoint!" in log


# --- CRLs ------------------------------------------------------------------------------------


def with_crl(stack: TlsStack, crl: bytes) -> None:
    write_pem(stack.host / "security" / "crl" / "server_crl.pem", crl, 0o400)
    stack.edit_servers(
        lambda server: server.update(managementTlsCrlPath="security/crl/", managementTlsCrlFiles=["server_crl.pem"])
    )


def test_a_revoked_client_is_refused(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = https_server(make_tls_stack)
    revoked = make_leaf(stack.pki.ca, name="revoked")
    with_crl(stack, make_crl(stack.pki.ca, revoked=[revoked]))
    stack.start_server(1)
    stack.wait_server_up(1)
    port = stack.server_ports(1)["management"]
    assert handshake(port, client_context(stack.pki.ca, revoked, tmp_path)) != "ok"
    assert handshake(port, stack.client) == "ok"


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


def _grpc(name: str) -> Callable[[TlsStack], Path]:
    return lambda stack: stack.host / "security" / "grpc" / name


INTERCOMM_REFUSALS: dict[str, tuple[Callable[[TlsStack], None], str]] = {
    "X.509 v1 certificate": (
        lambda stack: write_pem(_grpc("certs/server.pem")(stack), make_leaf(stack.pki.ca, version=1).cert_pem, 0o400),
        "Failed to parse X509 certificate, path:",
    ),
    "expired certificate": (
        lambda stack: write_pem(
            _grpc("certs/server.pem")(stack), make_leaf(stack.pki.ca, not_after=days(-1)).cert_pem, 0o400
        ),
        "Cert has expired! current time after cert time",
    ),
    "certificate not yet valid": (
        lambda stack: write_pem(
            _grpc("certs/server.pem")(stack), make_leaf(stack.pki.ca, not_before=days(2)).cert_pem, 0o400
        ),
        "Cert has expired! current time before cert time.",
    ),
    "CRL past its nextUpdate": (
        lambda stack: (
            write_pem(_grpc("crl/crl.pem")(stack), make_crl(stack.pki.ca, next_update=days(-1)), 0o400),
            stack.edit_servers(
                lambda server: server.update(interCommTlsCrlPath="security/grpc/crl/", interCommTlsCrlFiles=["crl.pem"])
            ),
        ),
        "Crl has expired! current time after next update time",
    ),
    "key is a symbolic link": (
        lambda stack: (
            _grpc("keys/server.key.pem")(stack).rename(_grpc("keys/real.pem")(stack)),
            _grpc("keys/server.key.pem")(stack).symlink_to(_grpc("keys/real.pem")(stack)),
        ),
        "Failed to get cert key path because The file: server.key.pem is a link.",
    ),
    "interCommTLSEnabled absent means true": (
        lambda stack: stack.edit_servers(
            lambda server: [
                server.pop(key) for key in list(server) if key.startswith("interComm") and "Port" not in key
            ]
        ),
        "Tls ca file is empty",
    ),
}


@pytest.mark.parametrize("case", INTERCOMM_REFUSALS, ids=list(INTERCOMM_REFUSALS))
def test_the_link_refused_at_start_fails_the_endpoint(make_tls_stack, case: str) -> None:  # type: ignore[no-untyped-def]
    damage, message = INTERCOMM_REFUSALS[case]
    stack = intercomm_server(make_tls_stack)
    damage(stack)
    status, log = refused(stack)
    assert status == -signal.SIGKILL, log
    assert message in log
    assert "Failed to start grpc wrapper in DMI scene." in log


def test_the_link_is_not_checked_when_switched_off_or_in_standard_mode(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()  # no interComm files at all
    stack.edit_servers(lambda server: server.update(interCommTLSEnabled=False))
    stack.start_server(1)
    stack.wait_server_up(1)

    def standard(server: dict[str, Any]) -> None:
        server.pop("interCommTLSEnabled")
        server["inferMode"] = "standard"

    stack.edit_servers(standard)
    stack.start_server(2)
    stack.wait_server_up(2)


def test_a_tls_client_does_not_reach_a_plain_server(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    stack.start_server(1)
    stack.wait_server_up(1)
    port = stack.server_ports(1)["management"]
    assert handshake(port, stack.client) != "ok"  # the plain listener answers 400 to a ClientHello
    assert stack.mgmt(1, "/v1/config")[0] == 200
