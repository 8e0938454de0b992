"""A cgroup v2 per child, where the supervisor owns its cgroup: the one record of a child's
processes that nothing inside the child can leave (not `setsid`, not a cleared environment).

At start the supervisor looks for its own cgroup on a cgroup v2 hierarchy and tries to make
`supervisor-pd.<run id>/` in it. Where that works (a writable, delegated cgroup; not a typical
Kubernetes container, whose cgroup file system is read-only), each child gets `<name>/` there: the
trampoline moves itself into it before exec, every process the child starts is born in it, and
killing what a run left is `cgroup.kill` (or SIGKILL to each member on kernels without it) until
`cgroup.procs` is empty. Elsewhere this is simply not used; the process-group walk and the tags
(runtime/processes.py) still apply in both cases.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PREFIX = "supervisor-pd."


def own_cgroup(proc: Path = Path("/proc/self")) -> Path | None:
    """This process's cgroup v2 folder, if a cgroup v2 hierarchy is mounted where we can see it."""
    try:
        lines = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None:
        return None
    for mount in mounts:
        left, _, right = mount.partition(" - ")
        fields, kind = left.split(), right.split()
        if len(fields) >= 5 and kind and kind[0] == "cgroup2":
            root, point = fields[3], fields[4]
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return Path(point) / path[len(root) :].lstrip("/")
    return None


class Cgroups:
    """`<own cgroup>/supervisor-pd.<instance>/<child>/`, made on demand."""

    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def take(cls, instance: str, own: Path | None = None) -> Cgroups | None:
        """Ours if we can make a cgroup below our own (we own it); None otherwise."""
        own = own if own is not None else own_cgroup()
        if own is None:
            return None
        base = own / f"{PREFIX}{instance}"
        try:
            base.mkdir(mode=0o755)
        except OSError:
            return None
        return cls(base)

    def folder(self, name: str) -> Path | None:
        """The child's cgroup (made now if needed); None if it cannot be made."""
        folder = self.base / name
        try:
            folder.mkdir(mode=0o755, exist_ok=True)
        except OSError:
            return None
        return folder

    def members(self, name: str) -> set[int]:
        try:
            text = (self.base / name / "cgroup.procs").read_text()
        except OSError:
            return set()
        return {int(pid) for pid in text.split()}

    def kill(self, name: str) -> None:
        folder = self.base / name
        try:
            (folder / "cgroup.kill").write_text("1")
            return
        except OSError:
            pass  # before Linux 5.14: one by one
        for pid in self.members(name):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Remove the (empty) cgroups; one still holding a process stays for a successor's sweep.
        The guardian removes them too when the supervisor exits: whichever comes first."""
        for folder in _folders(self.base):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            self.base.rmdir()


def sweep(base: Path) -> int:
    """Kill and remove what a dead supervisor left in its cgroups (`base`, named by its record);
    returns the processes killed. Never another supervisor's: only the path it recorded."""
    if not base.name.startswith(PREFIX) or not base.is_dir():
        return 0
    killed = 0
    for folder in [*_folders(base), base]:
        try:
            pids = (folder / "cgroup.procs").read_text().split()
        except OSError:
            continue
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
    cgroups = Cgroups(base)
    deadline = time.monotonic() + 2.0
    while any(cgroups.members(folder.name) for folder in _folders(base)) and time.monotonic() < deadline:
        time.sleep(0.01)  # the killed leave their cgroup as they die
    cgroups.close()
    return killed


def _folders(base: Path) -> list[Path]:
    """The child cgroups under `base`; none if it is gone (the guardian may have removed it)."""
    try:
        return [entry for entry in base.iterdir() if entry.is_dir()]
    except OSError:
        return []
