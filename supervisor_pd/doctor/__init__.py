"""Preflight: every check MindIE's guide asks for on one host, run before anything starts.

`examine` runs the checks over the facts discovery found and the plan made from them; their host
tool runs share one bounded pool, each run time-limited. See docs/doctor.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from supervisor_pd.doctor import host
from supervisor_pd.doctor.report import CHECKS, Check, Report, Status, downgrade, ordered
from supervisor_pd.doctor.weights import check_weights, weights_of
from supervisor_pd.errors import InputError
from supervisor_pd.plan.model import Plan
from supervisor_pd.platform.facts import HostFacts
from supervisor_pd.platform.toolpool import ToolPool
from supervisor_pd.settings import Settings

__all__ = ["CHECKS", "Check", "Report", "Status", "examine", "unexamined"]

# What a Server needs besides its connections: its own files, sockets to its peers, libraries.
_FILES_BESIDES_LINKS = 1024
_DEFAULT_MAX_LINKS = 1000  # ServerConfig.maxLinkNum's default


def examine(
    settings: Settings,
    facts: HostFacts,
    plan: Plan,
    environ: Mapping[str, str],
    preload: str | None,
    open_files: int | None = None,
    uid: int | None = None,
) -> Report:
    """The preflight report. `preload`: the jemalloc the children get in LD_PRELOAD, if any."""
    running_as = os.getuid() if uid is None else uid
    files = host.current_file_limit() if open_files is None else open_files
    with ToolPool(settings.tool_timeout, environ) as pool:
        view = host.HostView(settings, facts, environ, files, pool)
        links = host.ask_links(view)  # running while the other checks are made
        checks = [
            host.check_chip_health(view),
            host.check_links(links),
            host.check_npu(view),
            host.check_device_ips(view),
            host.check_shm(view),
            host.check_open_files(view, _files_wanted(plan)),
            host.check_jemalloc(view, preload),
            host.check_log_disk(view, _log_folders(settings, environ)),
            *check_weights(weights_of(plan), environ, running_as),
        ]
    return Report(ordered(downgrade(checks, settings.doctor_warn)))


def unexamined(error: InputError) -> Report:
    """The report when the inputs, discovery or planning were refused: that refusal, alone.
    It is never downgraded: nothing else could be examined."""
    check = Check("inputs", Status.FAIL, str(error), "see the message: nothing else was examined")
    return Report((check,))


def _files_wanted(plan: Plan) -> int:
    most = _DEFAULT_MAX_LINKS
    for server in plan.servers:
        document = json.loads(plan.file(server.config_file).content)
        links = document.get("ServerConfig", {}).get("maxLinkNum")
        if isinstance(links, int) and links > most:
            most = links
    return most + _FILES_BESIDES_LINKS


def _log_folders(settings: Settings, environ: Mapping[str, str]) -> list[Path]:
    home = environ.get("HOME") or str(Path.home())
    mindie = environ.get("MINDIE_LOG_PATH") or str(Path(home) / "mindie" / "log")
    folders = [Path(settings.state_dir)]
    # MINDIE_LOG_PATH may name a folder per component (`llm:/a;server:/b`): take each path.
    for part in mindie.split(";"):
        path = part.split(":", 1)[1] if ":" in part and not part.startswith("/") else part
        if path.strip():
            folders.append(Path(path.strip()))
    return folders
