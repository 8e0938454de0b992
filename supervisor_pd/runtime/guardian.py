"""Kills what a dead supervisor leaves behind.

Started by the supervisor with a pipe on stdin, in its own session. The supervisor writes
`T<prefix>` once (the tag every child and its descendants carry in their environment,
`SUPERVISOR_PD_PROCESS=<prefix><name>`), `C<folder>` when the children have cgroups of their own,
`+PGID` when a child's process group appears and `-PGID` when it is gone. When the pipe closes
(the supervisor exited, even by SIGKILL) every group still listed is killed, then every process
in the children's cgroups and every process still carrying the tag: workers that left their
group. The
children's parent-death signal reaches only the children themselves.
Standard library only; run as `python -I -S guardian.py`.
"""

import contextlib
import os
import signal
import sys
import time


def tagged(needle):
    found = []
    for name in os.listdir("/proc"):  # noqa: PTH208 - no pathlib: this starts in milliseconds
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:  # noqa: PTH123
                environ = handle.read()
        except OSError:
            continue
        if needle in b"\0" + environ:
            found.append(int(name))
    return found


def kill_cgroups(base):
    for name in os.listdir(base):  # noqa: PTH208
        folder = os.path.join(base, name)  # noqa: PTH118
        if not os.path.isdir(folder):  # noqa: PTH112
            continue
        try:
            with open(os.path.join(folder, "cgroup.kill"), "w") as handle:  # noqa: PTH118, PTH123
                handle.write("1")
            continue
        except OSError:
            pass
        try:
            with open(os.path.join(folder, "cgroup.procs")) as handle:  # noqa: PTH118, PTH123
                pids = handle.read().split()
        except OSError:
            continue
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def remove_cgroups(base):
    """The emptied cgroups go too; the killed leave them as they die."""
    for _ in range(200):
        try:
            for name in os.listdir(base):  # noqa: PTH208
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(base, name))  # noqa: PTH106, PTH118
            os.rmdir(base)  # noqa: PTH106
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def main():
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    groups = set()
    tag = None
    cgroup = None
    for line in sys.stdin:
        line = line.strip()
        if line[:1] == "+" and line[1:].isdigit():
            groups.add(int(line[1:]))
        elif line[:1] == "-" and line[1:].isdigit():
            groups.discard(int(line[1:]))
        elif line[:1] == "T" and len(line) > 1:
            tag = line[1:]
        elif line[:1] == "C" and len(line) > 1:
            cgroup = line[1:]
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    if cgroup:
        kill_cgroups(cgroup)
    if tag:
        needle = f"\0SUPERVISOR_PD_PROCESS={tag}".encode()
        for _ in range(3):  # what forked while we were killing
            found = [pid for pid in tagged(needle) if pid != os.getpid()]
            if not found:
                break
            for pid in found:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
    if cgroup:
        remove_cgroups(cgroup)


main()
