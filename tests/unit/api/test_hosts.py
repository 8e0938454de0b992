"""Which Host names may read status (DNS rebinding)."""

from __future__ import annotations

import socket

import pytest

from supervisor_pd.api.hosts import HostPolicy, host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8080", "localhost"),
        ("EXAMPLE.com", "example.com"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),  # no brackets: more than one colon is an address, not a port
        ("10.0.0.1:80", "10.0.0.1"),
        (" pod ", "pod"),
    ],
)
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_policy_allows_addresses_local_names_and_listed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "pd-7f9c")
    policy = HostPolicy(("pd.example.svc",))
    for header in ("127.0.0.1", "10.1.2.3:8080", "[fe80::1]:80", "localhost", "a.localhost:1", "PD-7F9C",
                   socket.gethostname(), "pd.example.svc.", None):  # fmt: skip
        assert policy.allows(header), header
    for header in ("evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "pd.example.svc.evil", "", "[::1"):
        assert not policy.allows(header), header
