"""A whole simulated PD stack with TLS: planned with the CLI, certificates written, the binaries
started by hand. Every switch on: a streamed chat completion over mutual TLS, the P->D hand-off
over TLS. A client switch that does not match its server: the link fails like an unreachable
Server. Refused link files: the hand-off fails, the Servers stay up (the link's rules case by case,
in-process: tests/unit/simulator/test_tls_refusals.py)."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

import pytest

from tests.integration.simulator.tlsstack import (
    TlsStack,
    client_context,
    handshake,
    https,
    load,
    server_tls_fields,
    set_motor_pairs,
    write_intercomm_files,
    write_server_files,
)
from tests.simstack import wait_until

CHAT = {"messages": [{"role": "user", "content": "hello over TLS"}], "stream": True}
COORDINATOR_ALL = ("controller_server", "request_server", "mindie_client", "mindie_mangment", "external", "status")
CONTROLLER_ALL = ("request_coordinator", "request_server", "http_server")


def all_on(make_tls_stack) -> TlsStack:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    write_server_files(stack.host, stack.pki)
    write_intercomm_files(stack.host, stack.pki)
    stack.edit_servers(lambda server: server.update(server_tls_fields(https=True, intercomm=True)))
    (stack.tmp / "controller").mkdir()
    set_motor_pairs(stack.out / "ms_coordinator.json", stack.tmp, stack.pki, dict.fromkeys(COORDINATOR_ALL, True))
    set_motor_pairs(
        stack.out / "ms_controller.json", stack.tmp / "controller", stack.pki, dict.fromkeys(CONTROLLER_ALL, True)
    )
    stack.secure = {"management": True, "status": True}
    return stack


def intercomm_port(stack: TlsStack, index: int) -> int:
    return int(load(stack.out / f"config{index}.json")["ServerConfig"]["interCommPort"])


def decode_indexes(stack: TlsStack) -> list[int]:
    count = len(stack.plan["servers"])
    return [i for i in range(1, count + 1) if stack.server_status(i)["service"]["currentRole"] == "decode"]


def test_a_chat_completion_streams_through_every_tls_link(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = all_on(make_tls_stack)
    stack.start_all()
    stack.wait_ready(60)
    code, body = https(stack.ports.predict, "/v1/chat/completions", stack.client, "POST", CHAT, timeout=30)
    assert code == 200, body
    events = [line for line in body.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) > 2
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"
    # The hand-off reached D on its link port, and that port speaks only mutual TLS.
    decode = decode_indexes(stack)
    assert decode
    for index in decode:
        port = intercomm_port(stack, index)
        assert handshake(port, stack.client) == "ok"
        assert handshake(port, client_context(stack.pki.ca, None, tmp_path)) != "ok"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b'{"op": "decode"}\n')
            reply = b""
            with contextlib.suppress(OSError):
                reply = raw.recv(1000)
            assert b'"ok"' not in reply  # a plain hand-off gets no answer
    # Prometheus text through the Coordinator's external listener, scraped over TLS from the Servers.
    code, text = https(stack.ports.external, "/metrics", stack.client)
    assert code == 200
    assert b"request_received_total" in text


@pytest.mark.parametrize("https_on", [True, False], ids=["Servers on HTTPS, Controller plain", "the reverse"])
def test_a_client_switch_that_does_not_match_the_server_fails_like_an_unreachable_server(
    make_tls_stack,  # type: ignore[no-untyped-def]
    https_on: bool,
) -> None:
    # MindIE's Controller gives up on the ranktable's Servers after 30 rounds of 2 tries each,
    # server_online_wait_seconds apart: scaled down further than usual (5 s -> 5 ms) to see that
    # in about a second; each try is a real connection that fails.
    stack: TlsStack = make_tls_stack(knobs={"SUPERVISOR_PD_SIM_TIME_SCALE": "0.001"})
    write_server_files(stack.host, stack.pki)
    stack.edit_servers(lambda server: server.update(server_tls_fields(https=https_on, intercomm=False)))
    (stack.tmp / "controller").mkdir()
    set_motor_pairs(
        stack.out / "ms_controller.json", stack.tmp / "controller", stack.pki, {"request_server": not https_on}
    )
    stack.secure = {"management": https_on}
    stack.start_all()
    wait_until(
        lambda: "only 0 Server(s) available" in stack.log("controller"),
        timeout=90,
        what="the Controller to find no Server it can talk to",
    )
    assert "cluster initialised" not in stack.log("controller")
    assert all(process.poll() is None for process in stack.processes.values())


def test_refused_link_files_fail_the_hand_off_not_the_servers(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    # The link key's mode is checked when the link is used (GetCertificateProvider): D has no
    # listener, P cannot make its client.
    stack: TlsStack = make_tls_stack()
    write_intercomm_files(stack.host, stack.pki)
    stack.edit_servers(lambda server: server.update(server_tls_fields(https=False, intercomm=True)))
    (stack.host / "security" / "grpc" / "keys" / "server.key.pem").chmod(0o640)
    stack.start_all()
    stack.wait_ready(60)
    code, body = stack.predict("/v1/chat/completions", CHAT | {"stream": False})
    assert code == 500, body
    assert "Check path: server.key.pem failed" in body.decode()
    assert all(process.poll() is None for process in stack.processes.values())
