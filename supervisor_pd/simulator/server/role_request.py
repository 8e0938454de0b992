"""What the Server accepts as a role request body: JsonParse::CheckPDRoleReqJson and CheckPDIPInfo
(MindIE-LLM src/server/endpoint/single_req_infer_interface/parse_protocol.cpp)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

_NUMERIC = re.compile(r"^\d+$")


def check_role_body(body: Any) -> str | None:
    """The Server's validation of a role request (reference §2.3); None when valid."""
    if not isinstance(body, dict) or not isinstance(body.get("local"), dict):
        return "local is required"
    problem = _check_node(body["local"], "local")
    if problem:
        return problem
    peers = body.get("peers")
    if not isinstance(peers, list):  # CheckPDRoleReqJson: present and an array
        return "peers must be an array"
    for index, peer in enumerate(peers):
        if not isinstance(peer, dict):
            return f"peers[{index}] must be an object"
        problem = _check_node(peer, f"peers[{index}]")
        if problem:
            return problem
    return None


def _check_node(node: dict[str, Any], where: str) -> str | None:
    """JsonParse::CheckPDIPInfo (MindIE-LLM parse_protocol.cpp), for `local` and each peer."""
    if "p_percentage" in node:
        value = node["p_percentage"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            return f"{where}.p_percentage must be an integer in [0, 100]"
    if not _is_ipv4(node.get("server_ip")):
        return f"{where}.server_ip must be an IPv4 address"
    if ("id" in node) != ("host_ip" in node):
        return f"{where}: id and host_ip must be given together"
    if "id" in node and (not isinstance(node["id"], int) or isinstance(node["id"], bool) or node["id"] < 0):
        return f"{where}.id must be an unsigned integer"
    devices = node.get("device", [])
    if not isinstance(devices, list):
        return f"{where}.device must be an array"
    for index, device in enumerate(devices):
        at = f"{where}.device[{index}]"
        if not isinstance(device, dict):
            return f"{at} must be an object"
        for key in ("device_logical_id", "device_id"):
            if not (isinstance(device.get(key), str) and _NUMERIC.match(device[key])):
                return f"{at}.{key} must be a numeric string"
        if not _is_ipv4(device.get("device_ip")):
            return f"{at}.device_ip must be an IPv4 address"
        for key in ("rank_id", "super_device_id"):
            if key in device and not (isinstance(device[key], str) and _NUMERIC.match(device[key])):
                return f"{at}.{key} must be a numeric string"
    return None


def _is_ipv4(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.IPv4Address(value)
    except ipaddress.AddressValueError:
        return False
    return True
