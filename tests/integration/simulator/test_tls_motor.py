"""The simulated Controller's and Coordinator's TLS, against MindIE-Motor's checks
(supervisor_pd/simulator/motortls.py, coordinator/tlslinks.py): TLS 1.3 mutual TLS on every
listener with the peer key check, and what each binary does when a pair's items or files are
refused.

The item and file rules case by case (with and without MINDIE_CHECK_INPUTFILES_PERMISSION, an
encrypted key, a pair no feature uses) are in tests/unit/simulator/test_tls_refusals.py,
in-process; here one case of each kind of outcome shows what it does to the process."""

from __future__ import annotations

import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.certs import make_ca, make_leaf
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


@pytest.fixture(scope="module")
def motor(make_module_tls_stack) -> TlsStack:  # type: ignore[no-untyped-def]
    """A Coordinator with its four listeners on TLS and a Controller with its probe listener on
    TLS, both started, for the tests that only make handshakes. The Controller's config also
    switches on external_coordinator (CCAE only) with items naming no file."""
    stack = tls_coordinator(make_module_tls_stack)
    (stack.tmp / "controller").mkdir()
    set_motor_pairs(stack.out / "ms_controller.json", stack.tmp / "controller", stack.pki, {"http_server": True})
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
    stack.start_coordinator()
    stack.start_controller()
    wait_until(lambda: stack.status("/v1/startup")[0] == 200, what="the Coordinator's status port over TLS")
    wait_until(lambda: handshake(stack.ports.controller, stack.client) == "ok", timeout=30, what="the probe over TLS")
    return stack


def test_every_coordinator_listener_is_tls13_mutual_tls(motor: TlsStack, tmp_path: Path) -> None:
    stack = motor
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


def test_the_controller_probe_listener_is_tls13_mutual_tls(motor: TlsStack, tmp_path: Path) -> None:
    stack = motor
    port = stack.ports.controller
    assert handshake(port, stack.client) == "ok"
    assert handshake(port, client_context(stack.pki.ca, None, tmp_path)) != "ok"
    assert handshake(port, client_context(stack.pki.ca, stack.pki.leaf("x"), tmp_path, tls12=True)) != "ok"


# --- config time -------------------------------------------------------------------------------


def edit_tls(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = load(path)
    change(data["tls_config"])
    save(path, data)


@pytest.mark.parametrize("binary", ["controller", "coordinator"])
def test_an_item_refused_at_config_time_ends_the_process(make_tls_stack, binary: str) -> None:  # type: ignore[no-untyped-def]
    # One of ITEM_REFUSALS in tests/unit/simulator/test_tls_refusals.py, for each binary.
    message = "Invalid length for string value of key 'ca_cert'. Length must be between [1, 4096], but found: 0."
    if binary == "controller":
        stack = tls_controller(make_tls_stack, ("request_server",))
        edit_tls(stack.out / "ms_controller.json", lambda tls: tls["request_server_tls_items"].update(ca_cert=""))
        process = stack.start_controller()
    else:
        stack = tls_coordinator(make_tls_stack, ("mindie_mangment",))
        edit_tls(stack.out / "ms_coordinator.json", lambda tls: tls["mindie_mangment_tls_items"].update(ca_cert=""))
        process = stack.start_coordinator()
    assert process.wait(30) == 1
    assert message in stack.log(binary)


def test_an_unused_pair_is_checked_only_at_config_time(motor: TlsStack) -> None:
    # external_coordinator (CCAE only) and etcd_server / alarm_client: no file is read.
    items = load(motor.out / "ms_controller.json")["tls_config"]["external_coordinator_tls_items"]
    assert not (motor.tmp / "controller" / items["tls_cert"]).exists()
    assert "probe server listening" in motor.log("controller")
    assert motor.processes["controller"].poll() is None


# --- the files, when the listener or client is made ---------------------------------------------


def test_a_refused_file_ends_the_controller(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # One of FILE_REFUSALS in tests/unit/simulator/test_tls_refusals.py.
    stack = tls_controller(make_tls_stack)
    items = load(stack.out / "ms_controller.json")["tls_config"]["http_server_tls_items"]
    (stack.tmp / "controller" / items["tls_cert"]).chmod(0o440)
    process = stack.start_controller()
    assert process.wait(30) == 1
    assert "is 440, but required no greater than 400" in stack.log("controller")
    assert "Init controller failed." in stack.log("controller")


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
