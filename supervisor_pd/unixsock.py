"""Unix socket paths longer than the kernel's 108-byte limit, reached through a directory fd.

Kept free of third-party imports: the CLI client uses it before anything heavy is loaded.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

# sun_path holds 108 bytes including the terminating NUL.
MAX_PATH = 107


@contextlib.contextmanager
def address(path: Path) -> Iterator[str]:
    """A name for `path` that fits in sun_path, valid inside the `with` block."""
    text = os.fsencode(path)
    if len(text) <= MAX_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def listen(path: Path, backlog: int = 128) -> socket.socket:
    """A listening socket at `path`, mode 0600 from the moment it exists."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with address(path) as name:
            previous = os.umask(0o177)
            try:
                sock.bind(name)
            finally:
                os.umask(previous)
        path.chmod(0o600)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with address(path) as name:
            sock.connect(name)
    except BaseException:
        sock.close()
        raise
    return sock
