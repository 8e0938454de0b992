"""The Ascend Operator's hccl.json on an A3: super device ids and device IPs, when it has them.

The Operator fills the file in (status `completed`) for the pod's job; discovery prefers it to
`npu-smi info -t spod-info`, and falls back to the tool whenever the file is missing, not complete,
or does not describe every visible chip of this pod.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import parse_json, validate_document
from supervisor_pd.formats.ranktable import HcclDevice, HcclJson
from supervisor_pd.platform import hccn
from supervisor_pd.platform.facts import Chip, Level

if TYPE_CHECKING:
    from supervisor_pd.platform.discover import Discovery

_LIMIT = 16 << 20


def operator_devices(run: Discovery, chips: list[Chip]) -> tuple[dict[str, HcclDevice], str | None] | None:
    """The Operator's completed hccl.json, by device id, with its super-pod id, when it describes
    every visible chip; else None (npu-smi spod-info is asked)."""
    operator = _read(run)
    if operator is None:
        return None
    servers = operator.server_list
    if len(servers) > 1:
        # A job of several pods: device ids repeat across them, so only this pod's entry is ours.
        # MindIE finds its own the same way (MindIE-Motor node_manager/core/config.py:126,
        # http_client_ctl/scripts/get_distribute_role.py:52: container_ip == the pod's IP).
        pod_ip = str(run.settings.pod_ip) if run.settings.pod_ip is not None else None
        servers = [server for server in servers if pod_ip is not None and server.container_ip == pod_ip]
        if len(servers) != 1:
            why = "POD_IP is not set" if pod_ip is None else f"no single entry has container_ip {pod_ip}"
            run.note(
                Level.WARNING,
                "hccl.json",
                f"lists {len(operator.server_list)} servers and {why}; using npu-smi spod-info",
            )
            return None
    devices = {device.device_id: device for server in servers for device in server.device}
    pod = operator.super_pod_list[0].super_pod_id if operator.super_pod_list else None
    for chip in chips:
        device = devices.get(str(chip.phy_id))
        if device is None or device.super_device_id is None:
            run.note(Level.WARNING, "hccl.json", "does not describe every visible NPU; using npu-smi spod-info")
            return None
    return devices, pod


def from_operator(chip: Chip, devices: dict[str, HcclDevice]) -> Chip:
    device = devices[str(chip.phy_id)]
    chip = replace(chip, super_device_id=device.super_device_id)
    address = hccn.valid_ipv4(device.device_ip or "")
    if address is not None:
        chip = replace(chip, device_ip=address, device_ip_source="hccl.json")
    return chip


def _read(run: Discovery) -> HcclJson | None:
    path = run.host.path(run.settings.hccl_json)
    where = str(run.settings.hccl_json)
    try:
        with path.open("rb") as handle:
            raw = handle.read(_LIMIT + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        run.note(Level.WARNING, where, f"cannot be read ({exc.strerror}); using npu-smi spod-info")
        return None
    if len(raw) > _LIMIT:
        raise InputError(where, f"is larger than {_LIMIT >> 20} MiB")
    document = validate_document(HcclJson, parse_json(raw, where), where)
    if document.status != "completed":
        run.note(
            Level.WARNING,
            where,
            f"status is {document.status!r}, not 'completed' (the Ascend Operator has not filled it in yet); "
            "using npu-smi spod-info",
        )
        return None
    return document
