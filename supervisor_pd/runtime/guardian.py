"""Kills what a dead supervisor leaves behind.

Started by the supervisor with a pipe on stdin, in its own session. The supervisor writes
`+PGID` when a child's process group appears and `-PGID` when it is gone. When the pipe closes
(the supervisor exited, even by SIGKILL) every group still listed is killed. Children also have a
parent-death signal, but that reaches only the child itself, not the workers it forked.
Standard library only; run as `python -I -S guardian.py`.
"""

import contextlib
import os
import signal
import sys


def main() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    groups = set()
    for line in sys.stdin:
        line = line.strip()
        if line[:1] == "+" and line[1:].isdigit():
            groups.add(int(line[1:]))
        elif line[:1] == "-" and line[1:].isdigit():
            groups.discard(int(line[1:]))
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


main()
