"""The control socket's file: a stale one left by a dead predecessor is removed before listening,
and at the stop only the socket this server made, never one another supervisor made at the same
path."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from supervisor_pd.errors import InputError
from supervisor_pd.settings import env_name


def remove_stale_socket(path: Path) -> None:
    """A socket nobody listens on goes; anything else at that path is not ours to delete."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise InputError(env_name("api_socket"), f"{path} exists and is not a socket; it is not replaced")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except ConnectionRefusedError:
        pass  # nobody listens: stale
    except OSError as exc:
        raise InputError(env_name("api_socket"), f"{path} cannot be checked: {exc.strerror}") from None
    else:
        raise InputError(env_name("api_socket"), f"{path} is a socket another process listens on; it is not replaced")
    finally:
        probe.close()
    path.unlink()


def remove_own_socket(path: Path, made: tuple[int, int] | None) -> None:
    """The socket at `path` if it is still the one made (device and inode `made`)."""
    if made is None:
        return
    try:
        found = os.lstat(path)
    except OSError:
        return
    if (found.st_dev, found.st_ino) == made:
        path.unlink(missing_ok=True)
