"""The simulated Controller's and Coordinator's TLS, against MindIE-Motor's checks
(supervisor_pd/simulator/motortls.py, coordinator/tlslinks.py): TLS 1.3 mutual TLS on every
listener with the peer key check, the config-time item checks, the file rules with and without
MINDIE_CHECK_INPUTFILES_PERMISSION, and what each binary does when a pair's files are refused."""

from __future__ import annotations

import os
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.certs import make_ca, make_leaf, write_pem
from tests.integration.simulator.tlsstack import (
    TlsStack,
    client_context,
    handshake,
    load,
    save,
    set_motor_pairs,
)
from tests.simstack import wait_until

LISTENERS = ("controller_server", "request_server", "status", "external")


def coordinator_ports(stack: TlsStack) -> dict[str, int]:
    ports = stack.ports
    return {
        "controller_server": ports.manage,
        "request_server": ports.predict,
        "status": ports.status,
        "external": ports.external,
    }


def tls_coordinator(make_tls_stack, pairs: tuple[str, ...] = LISTENERS) -> TlsStack:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    set_motor_pairs(stack.out / "ms_coordinator.json", stack.tmp, stack.pki, dict.fromkeys(pairs, True))
    stack.secure = {"status": "status" in pairs}
    return stack


def tls_controller(make_tls_stack, pairs: tuple[str, ...] = ("http_server",)) -> TlsStack:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    (stack.tmp / "controller").mkdir()
    set_motor_pairs(stack.out / "ms_controller.json", stack.tmp / "controller", stack.pki, dict.fromkeys(pairs, True))
    return stack


def test_every_coordinator_listener_is_tls13_mutual_tls(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = tls_coordinator(make_tls_stack)
    stack.start_coordinator()
    wait_until(lambda: stack.status("/v1/startup")[0] == 200, what="the Coordinator's status port over TLS")
    ca, other = stack.pki.ca, make_ca(name="another CA")
    refused = {
        "TLS 1.2": client_context(ca, stack.pki.leaf("test-client"), tmp_path, tls12=True),
        "no certificate": client_context(ca, None, tmp_path),
        "another CA's certificate": client_context(ca, make_leaf(other, name="intruder"), tmp_path),
        # CertVerify's key rule (RSA >= 2048, EC >= 256): OpenSSL's security level and TLS 1.3
        # refuse these before any check of the simulator's own could.
        "an RSA-1024 key": client_context(ca, make_leaf(ca, name="small-rsa", key="rsa1024"), tmp_path, weak=True),
        "an EC P-224 key": client_context(ca, make_leaf(ca, name="small-ec", key="ec224"), tmp_path, weak=True),
    }
    accepted = {
        "an RSA-2048 key": client_context(ca, make_leaf(ca, name="rsa2048", key="rsa2048"), tmp_path),
        "an EC P-256 key": client_context(ca, make_leaf(ca, name="ec256", key="ec256"), tmp_path),
    }
    for pair, port in coordinator_ports(stack).items():
        assert handshake(port, stack.client) == "ok", pair
        for what, context in refused.items():
            assert handshake(port, context) != "ok", f"{pair} accepted a client with {what}"
        for what, context in accepted.items():
            assert handshake(port, context) == "ok", f"{pair} refused a client with {what}"


def test_the_controller_probe_listener_is_tls13_mutual_tls(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = tls_controller(make_tls_stack)
    stack.start_controller()
    port = stack.ports.controller
    wait_until(lambda: handshake(port, stack.client) == "ok", timeout=30, what="the probe listener over TLS")
    assert handshake(port, client_context(stack.pki.ca, None, tmp_path)) != "ok"
    assert handshake(port, client_context(stack.pki.ca, stack.pki.leaf("x"), tmp_path, tls12=True)) != "ok"


# --- config time -------------------------------------------------------------------------------


def edit_tls(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = load(path)
    change(data["tls_config"])
    save(path, data)


ITEM_REFUSALS: dict[str, tuple[Callable[[dict[str, Any], str], None], str]] = {
    "switch missing": (lambda tls, pair: tls.pop(f"{pair}_tls_enable"), "_tls_enable' (a boolean)"),
    "tls_passwd missing": (
        lambda tls, pair: tls[f"{pair}_tls_items"].pop("tls_passwd"),
        "missing the expected key 'tls_passwd'",
    ),
    "ca_cert empty": (
        lambda tls, pair: tls[f"{pair}_tls_items"].update(ca_cert=""),
        "Invalid length for string value of key 'ca_cert'. Length must be between [1, 4096], but found: 0.",
    ),
}


@pytest.mark.parametrize("binary", ["controller", "coordinator"])
@pytest.mark.parametrize("case", ITEM_REFUSALS, ids=list(ITEM_REFUSALS))
def test_items_refused_at_config_time_end_the_process(make_tls_stack, binary: str, case: str) -> None:  # type: ignore[no-untyped-def]
    change, message = ITEM_REFUSALS[case]
    if binary == "controller":
        stack = tls_controller(make_tls_stack, ("request_server",))
        edit_tls(stack.out / "ms_controller.json", lambda tls: change(tls, "request_server"))
        process = stack.start_controller()
    else:
        stack = tls_coordinator(make_tls_stack, ("mindie_mangment",))
        edit_tls(stack.out / "ms_coordinator.json", lambda tls: change(tls, "mindie_mangment"))
        process = stack.start_coordinator()
    assert process.wait(30) == 1
    assert message in stack.log(binary)


def test_an_unused_pair_is_checked_only_at_config_time(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # external_coordinator (CCAE only) and etcd_server / alarm_client: no file is read.
    stack = tls_controller(make_tls_stack, ())
    edit_tls(
        stack.out / "ms_controller.json",
        lambda tls: tls.update(
            external_coordinator_tls_enable=True,
            external_coordinator_tls_items={
                "ca_cert": "./none.pem",
                "tls_cert": "./none.pem",
                "tls_key": "./none.pem",
                "tls_passwd": "./none.txt",
                "tls_crl": "",
            },
        ),
    )
    stack.start_controller()
    wait_until(lambda: "probe server listening" in stack.log("controller"), timeout=30, what="the Controller")


# --- the files, when the listener or client is made ---------------------------------------------


def item(stack: TlsStack, pair: str, key: str) -> Path:
    items = load(stack.out / "ms_controller.json")["tls_config"][f"{pair}_tls_items"]
    return stack.tmp / "controller" / items[key]


def set_item(stack: TlsStack, pair: str, key: str, value: str) -> None:
    edit_tls(stack.out / "ms_controller.json", lambda tls: tls[f"{pair}_tls_items"].update({key: value}))


def _move(stack: TlsStack, key: str, where: str) -> None:
    source = item(stack, "http_server", key)
    target = stack.tmp / "controller" / where
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)
    set_item(stack, "http_server", key, where)


def _symlink(stack: TlsStack) -> None:
    cert = item(stack, "http_server", "tls_cert")
    real = cert.with_name("real.pem")
    cert.rename(real)
    cert.symlink_to(real)


def _encrypted(stack: TlsStack, password: bytes, stored: bytes) -> None:
    leaf = stack.pki.leaf("motor-http_server")
    write_pem(item(stack, "http_server", "tls_key"), leaf.key_pem(password=password), 0o400)
    write_pem(item(stack, "http_server", "tls_passwd"), stored, 0o400)


FILE_REFUSALS: dict[str, tuple[Callable[[TlsStack], Any], str]] = {
    "a space in the path": (
        lambda stack: _move(stack, "tls_cert", "./security/http server/cert.pem"),
        "has characters outside [a-zA-Z0-9_./~-] or '..'",
    ),
    "'..' in the path": (
        lambda stack: set_item(stack, "http_server", "tls_key", "./security/../security/http_server/cert.key.pem"),
        "has characters outside [a-zA-Z0-9_./~-] or '..'",
    ),
    "a path over 256 characters": (
        lambda stack: _move(stack, "ca_cert", "./" + "d" * 200 + "/" + "e" * 60 + ".pem"),
        "maximum allowed length of 256",
    ),
    "a symbolic link": (_symlink, "a symbolic link, which is not allowed."),
    "certificate mode 0440": (
        lambda stack: item(stack, "http_server", "tls_cert").chmod(0o440),
        "is 440, but required no greater than 400",
    ),
    "key owned by another user": (
        lambda stack: os.chown(item(stack, "http_server", "tls_key"), 65534, 65534),
        "not the running user",
    ),
    "password file missing": (
        lambda stack: item(stack, "http_server", "tls_passwd").unlink(),
        "key_pwd.txt' does not exist.",
    ),
    "password file empty": (
        lambda stack: write_pem(item(stack, "http_server", "tls_passwd"), b"", 0o400),
        "key_pwd.txt is empty",
    ),
    "wrong password for an encrypted key": (
        lambda stack: _encrypted(stack, b"right-password", b"wrong-password\n"),
        "failed on use private key file",
    ),
    "CA file holds no certificate": (
        lambda stack: write_pem(item(stack, "http_server", "ca_cert"), b"nothing here\n", 0o400),
        "Failed to add certificate authority",
    ),
}


@pytest.mark.parametrize("case", FILE_REFUSALS, ids=list(FILE_REFUSALS))
def test_files_refused_end_the_controller(make_tls_stack, case: str) -> None:  # type: ignore[no-untyped-def]
    damage, message = FILE_REFUSALS[case]
    if "another user" in case and os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    stack = tls_controller(make_tls_stack)
    damage(stack)
    process = stack.start_controller()
    assert process.wait(30) == 1
    assert message in stack.log("controller")
    assert "Init controller failed." in stack.log("controller")


def test_an_encrypted_key_opens_with_its_password_file(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack = tls_controller(make_tls_stack)
    _encrypted(stack, b"right-password", b"right-password\n")  # one trailing newline is dropped
    stack.start_controller()
    wait_until(lambda: handshake(stack.ports.controller, stack.client) == "ok", timeout=30, what="the probe listener")


def test_switched_off_checks_allow_0640_keys_and_any_mode_certificates(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack = tls_controller(make_tls_stack, ("http_server", "request_server"))
    for pair in ("http_server", "request_server"):
        item(stack, pair, "tls_key").chmod(0o640)
        item(stack, pair, "tls_passwd").chmod(0o640)
        item(stack, pair, "tls_cert").chmod(0o666)
        item(stack, pair, "ca_cert").chmod(0o644)
    if os.getuid() == 0:
        os.chown(item(stack, "http_server", "tls_cert"), 65534, 65534)  # no owner check either
    unchecked = {"MINDIE_CHECK_INPUTFILES_PERMISSION": "0"}
    stack.start_controller(env=unchecked)
    wait_until(lambda: handshake(stack.ports.controller, stack.client) == "ok", timeout=30, what="the probe listener")
    stack.kill("controller")
    item(stack, "request_server", "tls_key").chmod(0o644)  # still more than 0640
    process = stack.start_controller(env=unchecked)
    assert process.wait(30) == 1
    assert "is 644, but required no greater than 640" in stack.log("controller")


# --- what the Coordinator does when a pair is refused -------------------------------------------


def refuse(stack: TlsStack, pair: str) -> None:
    data = load(stack.out / "ms_coordinator.json")
    cert = stack.tmp / data["tls_config"][f"{pair}_tls_items"]["tls_cert"]
    cert.chmod(0o444)


def test_refused_mindie_client_files_end_the_coordinator_with_status_0(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # RequestRepeater::Init fails, Coordinator::Run returns -1, main() ignores it and returns 0.
    stack = tls_coordinator(make_tls_stack, ("mindie_client",))
    refuse(stack, "mindie_client")
    process = stack.start_coordinator()
    assert process.wait(30) == 0
    assert "Initialize HTTP client failed." in stack.log("coordinator")


def test_refused_predict_listener_files_abort_the_coordinator(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack = tls_coordinator(make_tls_stack, ("request_server",))
    refuse(stack, "request_server")
    process = stack.start_coordinator()
    assert process.wait(30) == -signal.SIGABRT
    assert "terminate called without an active exception" in stack.log("coordinator")


def test_a_refused_status_listener_is_bound_but_never_answers(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack = tls_coordinator(make_tls_stack, ("status", "controller_server"))
    refuse(stack, "status")
    process = stack.start_coordinator()
    manage = stack.ports.manage
    wait_until(lambda: handshake(manage, stack.client) == "ok", what="the manage listener over TLS")
    with socket.create_connection(("127.0.0.1", stack.ports.status), timeout=1.5) as raw:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with pytest.raises((TimeoutError, socket.timeout)):  # connected, and then nothing
            context.wrap_socket(raw)
    assert process.poll() is None
    assert "Set TLS context 0 failed." in stack.log("coordinator")
