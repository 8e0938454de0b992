"""Device IPs: `hccn_tool -i N -ip -g` output and /etc/hccn.conf (reference §7.5)."""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address


def valid_ipv4(text: str) -> str | None:
    """The address in canonical form, or None if `text` is not a usable IPv4 address."""
    try:
        address = IPv4Address(text.strip())
    except AddressValueError:
        return None
    if address.is_unspecified:
        return None
    return str(address)


def parse_hccn_tool_ip(text: str) -> str | None:
    """The `ipaddr:` value printed by `hccn_tool -i N -ip -g`, or None."""
    for line in text.splitlines():
        match = re.match(r"^\s*ipaddr\s*[:：]\s*(\S+)\s*$", line)
        if match:
            return valid_ipv4(match.group(1))
    return None


def parse_hccn_conf(text: str) -> dict[int, str]:
    """`address_<phy id>=<ip>` lines of /etc/hccn.conf."""
    addresses: dict[int, str] = {}
    for line in text.splitlines():
        match = re.match(r"^\s*address_(\d+)\s*=\s*(\S+)\s*$", line)
        if match:
            address = valid_ipv4(match.group(2))
            if address is not None:
                addresses[int(match.group(1))] = address
    return addresses


def placeholder_ip(index: int) -> str:
    """The reference generator's placeholder scheme: 1.1.1.<k>, k counting from 1."""
    return f"1.1.1.{index + 1}"
