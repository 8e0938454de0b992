"""Shared libraries MindIE expects to be preloaded, found the way its boot.sh finds them."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor_pd.platform.hostfs import HostFS

JEMALLOC = "libjemalloc.so.2"
_SEARCHED = ("/usr/lib", "/usr/lib64")


def find_jemalloc(host: HostFS) -> Path | None:
    """libjemalloc.so.2 as boot.sh:28 finds it (`find /usr/lib /usr/lib64 -maxdepth 2 -type f`):
    a regular file, not a link, directly in those folders or one level below (the multiarch
    folders such as /usr/lib/aarch64-linux-gnu). The path is the one a child opens."""
    for top in _SEARCHED:
        base = host.path(top)
        try:
            below = sorted(entry / JEMALLOC for entry in base.iterdir() if entry.is_dir() and not entry.is_symlink())
        except OSError:
            continue
        for candidate in [base / JEMALLOC, *below]:
            if candidate.is_file() and not candidate.is_symlink() and _trusted(candidate):
                return candidate
    return None


def _trusted(library: Path) -> bool:
    """Preloaded into every child, so only a file root (or this user) owns and no one else may
    write: MindIE's guide warns against a same-named library planted under /usr
    (pd_separation_service_deployment.md:388)."""
    info = library.stat()
    return info.st_uid in (0, os.getuid()) and not info.st_mode & 0o022


def with_preload(current: str | None, library: Path | None) -> str | None:
    """LD_PRELOAD with `library` first (boot.sh:31 prepends it), unless a jemalloc is already there."""
    if library is None:
        return current
    entries = [entry for entry in (current or "").replace(" ", ":").split(":") if entry]
    if jemalloc_preloaded(current) is not None:
        return current
    return ":".join([str(library), *entries])


def jemalloc_preloaded(preload: str | None) -> str | None:
    """The jemalloc entry of LD_PRELOAD (ours or the user's own build), if there is one."""
    for entry in (preload or "").replace(" ", ":").split(":"):
        if entry and Path(entry).name.startswith("libjemalloc.so"):
            return entry
    return None
