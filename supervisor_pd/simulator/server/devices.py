"""Which NPU a logical id names inside a container, as the Ascend runtime resolves it.

The Server loads its model on `local.device[].device_logical_id` of the role request (MindIE-LLM
`src/server/endpoint/http_wrapper/dmi_role.cpp`, `localDeviceLogicalIds`;
`http_handler.cpp` reads the same field for its NPU health ids), never on `device_id`. Logical
ids count the NPUs the container sees (its `/dev/davinci<N>`, chosen by ASCEND_VISIBLE_DEVICES)
from 0 in ascending order; ASCEND_RT_VISIBLE_DEVICES, when set, picks among those and renumbers
them from 0 (docs/mindie-interfaces.md §7.7).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from supervisor_pd.simulator.knobs import run_dir


def visible_devices() -> list[int] | None:
    """Physical ids by logical id for this process; None without a simulated host."""
    host = os.environ.get("SUPERVISOR_PD_SIM_HOST")
    if not host:
        return None
    found = sorted(
        int(match.group(1))
        for entry in (Path(host) / "dev").iterdir()
        if (match := re.fullmatch(r"davinci(\d+)", entry.name))
    )
    runtime = os.environ.get("ASCEND_RT_VISIBLE_DEVICES", "").strip()
    if not runtime:
        return found
    return [found[int(i)] for i in runtime.split(",") if i.strip().isdigit() and int(i) < len(found)]


def claim_devices(logical_ids: list[str], locks: list[int]) -> str | None:
    """Lock the NPU of each logical id for this process (held until it ends), as the device driver
    gives a device to one process; the problem, in the runtime's words, when one cannot be had."""
    visible = visible_devices()
    for logical in logical_ids:
        if visible is None:
            device = int(logical)  # no simulated host: logical and physical ids are one
        elif int(logical) >= len(visible):
            return f"device logical id {logical} is not one of the {len(visible)} this process sees (aclrtSetDevice)"
        else:
            device = visible[int(logical)]
        path = run_dir() / f"davinci{device}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return f"device {device} is used by another process (dcmi error -8020)"
        locks.append(fd)
    return None
