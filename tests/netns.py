"""Run a command in a private network namespace whose loopback is up: its own 127.0.0.1, so the
sample configs' fixed ports (8080, 1025, 2000...) are free there whatever else runs on the machine,
and nothing it does can reach another stack on the machine.

    python -I -S tests/netns.py COMMAND [ARG...]

Root gets a new network namespace; anyone else (or root without CAP_SYS_ADMIN) a user namespace
that maps only their own uid and gid onto themselves (so files and permissions look as they do
outside) with a network namespace inside it. Loopback is brought up with an ioctl, so neither
util-linux's `unshare` nor iproute2's `ip` is needed. The command then replaces this process
(same pid, same signals). Exits 125 with a one-line reason when no namespace can be made.

Standard library only: tests/helpers.py runs it with `-I -S`, without the project's packages.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq: the name, then ifr_flags at the start of the 24-byte union
CANNOT = 125


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def enter() -> None:
    """Move this process into a new network namespace (in a new user namespace if need be)."""
    uid, gid = os.geteuid(), os.getegid()
    errors = []
    if uid == 0:
        try:
            _unshare(CLONE_NEWNET)
        except OSError as exc:
            errors.append(f"unshare(CLONE_NEWNET): {exc.strerror}")
        else:
            return
    try:
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    except OSError as exc:
        errors.append(f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {exc.strerror}")
        raise OSError("; ".join(errors)) from None
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: netns.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    try:
        enter()
        loopback_up()
    except OSError as exc:
        print(f"tests/netns.py: {exc}", file=sys.stderr)
        return CANNOT
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - replaces this process; no shell involved
    except OSError as exc:
        print(f"tests/netns.py: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
