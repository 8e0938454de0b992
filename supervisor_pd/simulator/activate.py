"""The simulated host a `--simulate` run uses: built (or reused) and described, never applied.

`activate` touches no process state: it neither reads nor writes os.environ. The caller applies
what it returns: `bin_dir` first on PATH, `root` as the host root discovery reads (and the
simulated tools' SUPERVISOR_PD_SIM_HOST), and `env` for variables the container would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from supervisor_pd.simulator.host import MARKER, build_sim_host, container_env
from supervisor_pd.simulator.profiles import PROFILES


@dataclass(frozen=True)
class SimulatedHost:
    profile: str  # e.g. "800i-a2"
    root: Path  # the fixture tree discovery reads as its host root (/sys, /proc, /dev, /etc)
    bin_dir: Path  # simulated host tools and MindIE binaries under their real names; to go first on PATH
    env: dict[str, str]  # variables the profile gives the container (ASCEND_VISIBLE_DEVICES ...); never PATH


class SimulatorError(Exception):
    """The simulated host cannot be built or used; the message names the path and the cause."""


def activate(profile: str, state_dir: Path, build: bool = True) -> SimulatedHost:
    """Build (or reuse) the simulated host for `profile` under state_dir/sim/<profile>; raises SimulatorError.

    `build=False`: a stack is running on it; use the host that is there as it is, never rewrite it
    (it is built only when there is none)."""
    root = (state_dir / "sim" / profile).absolute()
    if profile not in PROFILES:
        known = ", ".join(sorted(PROFILES))
        raise SimulatorError(f"{_shown(root)}: no simulated host profile {profile!r} (known: {known})")
    if not build and (root / MARKER).is_file():
        return SimulatedHost(
            profile=profile, root=root, bin_dir=root / "bin", env=container_env(PROFILES[profile], root)
        )
    try:
        host = build_sim_host(PROFILES[profile], root)
    except OSError as exc:
        raise SimulatorError(f"{_shown(root)} cannot hold the simulated host: {exc.strerror or exc}") from None
    return SimulatedHost(
        profile=profile, root=host.root, bin_dir=host.bin_dir, env=container_env(host.profile, host.root)
    )


def _shown(path: Path) -> str:
    """A path fit for a one-line message: control characters escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(path))
