"""Switching this process to a simulated host (`--simulate` / SUPERVISOR_PD_SIMULATE)."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor_pd.confdir import show_path
from supervisor_pd.errors import InputError
from supervisor_pd.settings import env_name
from supervisor_pd.simulator.host import SimHost, build_sim_host
from supervisor_pd.simulator.profiles import PROFILES


def activate(profile: str, state_dir: Path) -> SimHost:
    """Build the simulated host under `state_dir` and point this process's environment at it.

    The simulator's bin folder goes first on PATH, so discovery and every child find the
    simulated tools under their real names; variables the profile sets (ASCEND_VISIBLE_DEVICES
    for a container given part of the host) are set unless already set.
    """
    root = state_dir / "sim" / profile
    try:
        host = build_sim_host(PROFILES[profile], root)
    except OSError as exc:
        raise InputError(
            env_name("state_dir"), f"{show_path(root)} cannot hold the simulated host: {exc.strerror or exc}"
        ) from None
    os.environ.update(host.environ(dict(os.environ)))
    return host
