"""The port checker binds real sockets on loopback."""

import os
import socket

from supervisor_pd.plan.ports import BindChecker, Trouble


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_free_port_is_fine() -> None:
    assert BindChecker().problem("127.0.0.1", free_port()) is None


def test_a_listening_port_is_in_use_and_its_owner_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        problem = BindChecker().problem("127.0.0.1", port)
        assert problem is not None
        assert problem.trouble is Trouble.IN_USE
        assert f"by pid {os.getpid()}" in problem.text
        # The Server checks its ports on every interface: a loopback listener blocks 0.0.0.0 too.
        assert BindChecker().problem("0.0.0.0", port) is not None


def test_an_address_that_is_not_local() -> None:
    problem = BindChecker().problem("192.0.2.55", free_port())  # TEST-NET-1, never assigned here
    assert problem is not None
    assert problem.trouble is Trouble.BAD_IP
