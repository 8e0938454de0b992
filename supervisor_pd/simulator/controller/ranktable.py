"""The Controller's RankTableLoader: what it accepts in the global ranktable and what it builds from it.

Written from MindIE-Motor's own source (github.com/Ascend/MindIE-Motor, commit 5dfb024e), never from
supervisor_pd's checker, so that a bug in the product's checker can show in tests. Citations are
file:line in that tree, with these short names:

- RTL: mindie_motor/src/controller/node_scheduler/rank_table_loader/RankTableLoader.cpp
- CP: mindie_motor/src/http_client_ctl/params/ConfigParams.cpp (and ConfigParams.h)
- CC: mindie_motor/src/controller/constant/ControllerConstant.cpp
- JFL: mindie_motor/src/controller/json_file_loader/JsonFileLoader.cpp

LoadRankTable (RTL:746-796) has three outcomes, and `load_ranktable` keeps them apart:

- rejected (it returns -1): `RankTableRejected`, whose message says the first rule that failed;
- loaded with Servers;
- loaded with no Server at all: the parse stage gives up (a repeated node id) without failing
  the load (RTL:330-335; MindIE's own test TestDupIpFailed expects exactly this). The Controller
  then finds fewer than two Servers and retries.

Modelled: the single-machine modes (`multi_node_infer_enable` false, RTL:765), PD-separate or
single-node deploy modes, heterogeneous or not. Not modelled: the file checks done before
parsing (mode, owner, size: FileToBuffer in http_client_ctl/common/Util.cpp) and the JSON depth
callback; a failure there is a rejection too.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COORDINATOR_GROUP = "0"  # CC:271-274 GetMindIECoordinatorGroup
SERVER_GROUP = "2"  # CC:276-279 GetMindIEServerGroup
MIN_GROUPS, MAX_GROUPS = 2, 3  # RTL:28-29, used at RTL:765-766 when not multi-node
MAX_COORDINATORS = 2  # RTL:35, RTL:634
MAX_SERVERS = 96  # RTL:27, RTL:593
MIN_SERVERS = 2  # RTL:26; fewer is only a warning (RTL:666-673, RTL:699-706)
MIN_DEVICES, MAX_DEVICES = 1, 128  # RTL:548
DEVICE_ID_RANGE = (0, 2048)  # RTL:30-31, for device_id, device_logical_id and rank_id
SUPER_DEVICE_ID_RANGE = (0, 1 << 30)  # RTL:32-33
PORT_RANGE = (1024, 65535)  # CP:119-122 IsValidPort
PORT_KEYS = ("predict_port", "mgmt_port", "metric_port", "inter_comm_port")  # RTL:528
HARDWARE_TYPES = ("800I A2(64G)", "800I A2(32G)")  # RTL:561-562
STRING_BYTES = (1, 4096)  # ConfigParams.h:28-29, the default bounds of IsJsonStringValid
INT32 = (-(1 << 31), (1 << 31) - 1)


class RankTableRejected(ValueError):
    """LoadRankTable returned -1; the message names the first rule the file broke."""


class _Thrown(Exception):
    """A C++ exception inside the loader (a nlohmann type error, std::stoi's invalid_argument or
    out_of_range); the loader's catch blocks turn it into a rejection (RTL:602-607, 643-648, 791-795)."""


@dataclass(frozen=True)
class LoadedRankTable:
    servers: tuple[dict[str, Any], ...]  # the group "2" entries that became nodes, in ranktable order
    super_pods: dict[str, str]  # server_id -> super_pod_id, from group "2"'s super_pod_list
    coordinators: tuple[str, ...]  # the server_ip of each group "0" entry
    warnings: tuple[str, ...]


# --- the C++ behaviours the rules depend on -----------------------------------------------


def stoi(text: str) -> int:
    """std::stoi, base 10: skips leading white space, takes an optional sign and at least one
    ASCII digit, ignores whatever follows; no digit, or a value outside int32, throws."""
    cut = text.split("\0", 1)[0]  # the C string ends at a NUL
    stripped = cut.lstrip(" \t\n\v\f\r")
    sign = stripped[:1] if stripped[:1] in ("+", "-") else ""
    body = stripped[len(sign) :]
    digits = len(body) - len(body.lstrip("0123456789"))
    if digits == 0:
        raise _Thrown(f"{text!r} is not a number")
    value = int(sign + body[:digits])
    if not INT32[0] <= value <= INT32[1]:
        raise _Thrown(f"{text!r} is out of the int range")
    return value


def _string(obj: dict[str, Any], key: str) -> str | None:
    """IsJsonStringValid (CP:148-171): present, a string, 1 to 4096 bytes."""
    value = obj.get(key)
    if not isinstance(value, str):
        return None
    size = len(value.encode("utf-8", "surrogatepass"))
    return value if STRING_BYTES[0] <= size <= STRING_BYTES[1] else None


def _array(obj: Any, key: str, low: int, high: int) -> list[Any] | None:
    """IsJsonArrayValid (CP:173-195): present, an array, low..high elements. A value that is not
    an object holds no key."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) and low <= len(value) <= high else None


def valid_ip(text: Any) -> bool:
    """IsValidIp with allowAllZeroIp false (CP:62-105, ConfigParams.h:154): empty is invalid; a ':'
    makes it IPv6, else IPv4, each as inet_pton reads it; 0.0.0.0 and :: are refused."""
    if not isinstance(text, str) or not text:
        return False
    ipv6 = ":" in text
    if text == ("::" if ipv6 else "0.0.0.0"):
        return False
    try:
        socket.inet_pton(socket.AF_INET6 if ipv6 else socket.AF_INET, text.split("\0", 1)[0])
    except (OSError, ValueError):
        return False
    return True


def _in_range(text: str, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= stoi(text) <= bounds[1]


# nlohmann::json operations of the parse stage, which runs without the validators' guards.


def _elements(value: Any) -> list[Any]:
    """A range-for over a json value: an array's elements, an object's values, nothing for null,
    the value itself for anything else."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def _subscript(value: Any, key: str) -> Any:
    """Non-const operator[]: null turns into an object, a missing key reads as null; any other
    type throws."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get(key)
    raise _Thrown(f"cannot read {key!r} from a {type(value).__name__}")


def _at(value: Any, key: str) -> Any:
    """at(): an object holding `key`, else it throws."""
    if isinstance(value, dict) and key in value:
        return value[key]
    raise _Thrown(f"{key!r} is missing")


def _text(value: Any, what: str) -> str:
    """get<std::string>() and the implicit conversion to std::string: a string, else it throws."""
    if isinstance(value, str):
        return value
    raise _Thrown(f"{what} is not a string")


def _with_default(obj: Any, key: str, default: str) -> str:
    """value(key, std::string default): the default when the key is absent; throws on an
    object whose value is not a string, or on anything but an object."""
    if not isinstance(obj, dict):
        raise _Thrown(f"cannot read {key!r} from a {type(obj).__name__}")
    return _text(obj[key], key) if key in obj else default


# --- validation: IsValidCoordinatorGroup and IsValidServerGroup -------------------------------


def _has_group_id(group: Any) -> bool:
    return isinstance(group, dict) and _string(group, "group_id") is not None


def _check_coordinator_group(groups: list[Any]) -> None:
    """IsValidCoordinatorGroup (RTL:622-649): the groups are walked in order; each one reached
    must be an object with a group_id string; the first group "0" must hold 0 to 2 entries, each an
    object with a valid server_ip. No group "0" is a rejection."""
    for index, group in enumerate(groups):
        if not _has_group_id(group):
            raise RankTableRejected(f"server_group_list[{index}] needs a group_id string of 1 to 4096 bytes")
        if group["group_id"] != COORDINATOR_GROUP:
            continue
        entries = _array(group, "server_list", 0, MAX_COORDINATORS)
        if entries is None:
            raise RankTableRejected(f'group "0": server_list must be an array of 0 to {MAX_COORDINATORS} entries')
        for number, entry in enumerate(entries):  # IsValidCoordinatorList, RTL:610-620
            if not isinstance(entry, dict) or not valid_ip(_string(entry, "server_ip")):
                raise RankTableRejected(f'group "0": entry {number} needs a valid server_ip')
        return
    raise RankTableRejected('no group with group_id "0" (the Coordinator group)')


def _check_server_group(groups: list[Any], pd_separate: bool, heterogeneous: bool) -> None:
    """IsValidServerGroup (RTL:581-608): the groups are walked in order; each one reached must be
    an object with a group_id string that std::stoi reads (else the exception rejects the file);
    groups below 2 are skipped; the first one at 2 or above is the one checked: 0 to 96 Servers,
    each valid. No such group is a rejection."""
    minimum = stoi(SERVER_GROUP)
    for index, group in enumerate(groups):
        if not _has_group_id(group):
            raise RankTableRejected(f"server_group_list[{index}] needs a group_id string of 1 to 4096 bytes")
        try:
            number = stoi(group["group_id"])
        except _Thrown as exc:
            raise RankTableRejected(f"server_group_list[{index}]: group_id {exc}") from None
        if number < minimum:
            continue
        where = f"group {json.dumps(group['group_id'])}"
        servers = _array(group, "server_list", 0, MAX_SERVERS)
        if servers is None:
            raise RankTableRejected(f"{where}: server_list must be an array of 0 to {MAX_SERVERS} Servers")
        for position, server in enumerate(servers):  # IsValidServerList, RTL:570-580
            problem = _server_problem(server, pd_separate, heterogeneous)
            if problem:
                raise RankTableRejected(f"{where}: server {position}: {problem}")
        return
    raise RankTableRejected('no Server group (a group_id of "2" or more)')


def _server_problem(server: Any, pd_separate: bool, heterogeneous: bool) -> str | None:
    """IsValidServer (RTL:518-568)."""
    if not isinstance(server, dict):
        return "is not an object"
    for key in ("server_ip", "server_id"):  # RTL:521-527: both must be IP addresses
        if not valid_ip(_string(server, key)):
            return f"{key} must be a valid IP address"
    for key in PORT_KEYS:  # RTL:528-539: optional, a string std::stoi reads, in [1024, 65535]
        if key not in server:
            continue
        problem = _numeric_text(server[key], PORT_RANGE)
        if problem:
            return f"{key} {problem}"
    if not pd_separate:  # RTL:540-542: outside PD modes nothing more is checked
        return None
    if "super_pod_id" in server:  # RTL:543-547: a string std::stoi reads, any int
        problem = _numeric_text(server["super_pod_id"], INT32)
        if problem:
            return f"super_pod_id {problem}"
    devices = _array(server, "device", MIN_DEVICES, MAX_DEVICES)
    if devices is None:  # RTL:548-552
        return f"device must be an array of {MIN_DEVICES} to {MAX_DEVICES} devices"
    for number, device in enumerate(devices):  # RTL:553-557
        problem = _device_problem(device)
        if problem:
            return f"device {number}: {problem}"
    # RTL:558-566: heterogeneous clusters name each Server's hardware
    if heterogeneous and _string(server, "hardware_type") not in HARDWARE_TYPES:
        return f"hardware_type must be one of {', '.join(HARDWARE_TYPES)}"
    return None


def _device_problem(device: Any) -> str | None:
    """IsValidDeviceInfo (RTL:472-516)."""
    if not isinstance(device, dict):
        return "is not an object"
    if not valid_ip(_string(device, "device_ip")):  # RTL:474
        return "device_ip must be a valid IP address"
    for key in ("device_id", "device_logical_id", "rank_id"):  # RTL:475-500
        if _string(device, key) is None:
            return f"{key} must be a string of 1 to 4096 bytes"
    for key in ("device_id", "device_logical_id", "rank_id"):
        problem = _numeric_text(device[key], DEVICE_ID_RANGE)
        if problem:
            return f"{key} {problem}"
    if "super_device_id" in device:  # RTL:501-509
        problem = _numeric_text(device["super_device_id"], SUPER_DEVICE_ID_RANGE)
        if problem:
            return f"super_device_id {problem}"
    return None


def _numeric_text(value: Any, bounds: tuple[int, int]) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    try:
        inside = _in_range(value, bounds)
    except _Thrown as exc:
        return str(exc)
    return None if inside else f"{value!r} is outside [{bounds[0]}, {bounds[1]}]"


# --- the parse stage: GetServerNodes and GetCoordinatorNode ----------------------------------


def _super_pods(listing: Any) -> dict[str, str]:
    """GetSuperPodListMap (RTL:279-288): server_id -> super_pod_id; each member's server_id and its
    pod's super_pod_id are converted to strings (a non-string throws)."""
    pods: dict[str, str] = {}
    for pod in _elements(listing):
        pod_id = _subscript(pod, "super_pod_id")
        for member in _elements(_subscript(pod, "server_list")):
            pods[_text(_subscript(member, "server_id"), "super_pod_list server_id")] = _text(pod_id, "super_pod_id")
    return pods


def _parse_servers(
    groups: list[Any], pd_separate: bool, heterogeneous: bool, default_mgmt_port: str
) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    """ParseServerNodes (RTL:347-364) and ParseGroupServerNodes (RTL:290-345): the group whose
    group_id is exactly "2"; every Server must be readable; a Server whose ip or management port is
    invalid, or a node id (server_ip + mgmt_port, as one string) seen twice, ends the parse with no
    Server at all (RTL:43-50, 325-335) without failing the load."""
    for group in groups:
        if _text(_subscript(group, "group_id"), "group_id") != SERVER_GROUP:
            continue
        entries = _subscript(group, "server_list")
        pods = _super_pods(group["super_pod_list"]) if "super_pod_list" in group else {}
        servers: list[dict[str, Any]] = []
        keys: set[str] = set()
        for server in _elements(entries):
            _text(_at(server, "server_id"), "server_id")  # RTL:308
            ip = _text(_at(server, "server_ip"), "server_ip")  # RTL:312
            if pd_separate:  # GetDeviceInfo, RTL:148-160
                for device in _elements(_at(server, "device")):
                    for key in ("device_id", "device_ip", "device_logical_id"):
                        _text(_subscript(device, key), key)
                    stoi(_text(_subscript(device, "rank_id"), "rank_id"))
                    if isinstance(device, dict) and "super_device_id" in device:
                        _text(device["super_device_id"], "super_device_id")
            # UpdateNodePorts (RTL:96-103): absent ports come from ms_controller.json
            # (only the management port's default matters to what the load decides)
            ports = [_with_default(server, key, default_mgmt_port if key == "mgmt_port" else "") for key in PORT_KEYS]
            mgmt_port = ports[PORT_KEYS.index("mgmt_port")]
            # AllocateNodeId (RTL:43-64)
            if not valid_ip(ip) or not PORT_RANGE[0] <= stoi(mgmt_port) <= PORT_RANGE[1]:
                return [], pods, [f"Server {ip}: invalid ip or management port {mgmt_port!r}; no Server is loaded"]
            if ip + mgmt_port in keys:
                return [], pods, [f"Server {ip}: non-unique node id {ip + mgmt_port!r}; no Server is loaded"]
            keys.add(ip + mgmt_port)
            if pd_separate and heterogeneous:  # RTL:336-338
                _text(_at(server, "hardware_type"), "hardware_type")
            servers.append(server)
        return servers, pods, []
    return [], {}, [f'no group with group_id "{SERVER_GROUP}": no Server is loaded']


def _parse_coordinators(groups: list[Any]) -> list[str]:
    """GetCoordinatorNode (RTL:651-664) and ParseGroupCoordinatorNodes (RTL:456-471): an entry
    without a string server_ip empties the list (a warning, not a failure)."""
    for group in groups:
        if _text(_subscript(group, "group_id"), "group_id") != COORDINATOR_GROUP:
            continue
        found = []
        for entry in _elements(_subscript(group, "server_list")):
            if not isinstance(entry, dict) or not isinstance(entry.get("server_ip"), str):
                return []
            found.append(entry["server_ip"])
        return found
    return []


# --- the whole load -------------------------------------------------------------------------


def load_ranktable(
    data: Any, *, pd_separate: bool = True, heterogeneous: bool = False, default_mgmt_port: str = "1026"
) -> LoadedRankTable:
    """LoadRankTable (RTL:746-796) on a parsed file. `pd_separate`: ms_controller.json's deploy_mode
    is one of the PD modes (CC:117-120); `heterogeneous`: its is_heterogeneous;
    `default_mgmt_port`: its mindie_server_control_port, used for Servers with no mgmt_port."""
    # JFL:17-33 and RTL:756-761: an empty JSON value (null, {}, []) is a failed read.
    if data is None or (isinstance(data, dict | list) and not data):
        raise RankTableRejected("the file holds an empty JSON value")
    groups = _array(data, "server_group_list", MIN_GROUPS, MAX_GROUPS)  # RTL:765-766
    if groups is None:
        raise RankTableRejected(f"server_group_list must be an array of {MIN_GROUPS} to {MAX_GROUPS} groups")
    try:
        _check_coordinator_group(groups)  # RTL:767
        _check_server_group(groups, pd_separate, heterogeneous)  # RTL:767
        servers, pods, warnings = _parse_servers(groups, pd_separate, heterogeneous, default_mgmt_port)  # RTL:774
        coordinators = _parse_coordinators(groups)  # RTL:784
    except _Thrown as exc:  # RTL:791-795
        raise RankTableRejected(f"parsing failed: {exc}") from None
    if len(servers) < MIN_SERVERS:  # RTL:775-783: a warning only
        warnings.append(f"{len(servers)} Server(s) loaded, fewer than {MIN_SERVERS}")
    if not coordinators:  # RTL:785-788
        warnings.append("the Coordinator list is empty")
    return LoadedRankTable(tuple(servers), pods, tuple(coordinators), tuple(warnings))


def load_ranktable_file(path: Path, **options: Any) -> LoadedRankTable:
    """Read, parse and load the file at `path` (FileToJsonObj, JFL:17-33: unreadable or not JSON is
    a failed read). JSON's NaN and Infinity are not JSON to nlohmann either."""
    try:
        data = json.loads(path.read_bytes(), parse_constant=_no_constant)
    except OSError as exc:
        raise RankTableRejected(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RankTableRejected(f"{path} is not JSON: {exc}") from None
    return load_ranktable(data, **options)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
