"""Runs between fork and the child's program: parent-death signal, CPU set, file limit, then exec.

Started as `python -I -S trampoline.py PPID PDEATHSIG CPUS NOFILE CGROUP -- argv...` so it costs a few
milliseconds and imports nothing but the standard library. Setting these here, before exec,
means the child never runs a single instruction of its own outside its CPU set, and never
outlives the supervisor thread that spawned it (PR_SET_PDEATHSIG follows that thread). NOFILE
gives the child back the soft file limit the supervisor was started with (it raises its own).
CGROUP, a cgroup v2 folder, is where it moves itself first, so everything the child ever starts
is born in its cgroup (runtime/cgroups.py). "-" for any of them: leave it.
"""

import contextlib
import ctypes
import os
import resource
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    ppid, deathsig, cpus, nofile, cgroup = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    argv = sys.argv[7:]
    if cgroup != "-":
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as handle:  # noqa: PTH118, PTH123 - no pathlib here
                handle.write(str(os.getpid()))
        except OSError as exc:
            sys.stderr.write(f"trampoline: cannot join cgroup {cgroup}: {exc.strerror}\n")
    libc = ctypes.CDLL(None, use_errno=True)
    if deathsig and libc.prctl(PR_SET_PDEATHSIG, deathsig, 0, 0, 0) != 0:
        sys.stderr.write(f"trampoline: prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}\n")
        os._exit(126)
    if str(os.getppid()) != ppid:
        os._exit(126)  # the supervisor died before the signal was armed
    if cpus != "-":
        wanted = set()
        for part in cpus.split(","):
            low, _, high = part.partition("-")
            wanted.update(range(int(low), int(high or low) + 1))
        try:
            os.sched_setaffinity(0, wanted)
        except OSError as exc:
            sys.stderr.write(f"trampoline: cannot bind to CPUs {cpus}: {exc.strerror}\n")
            os._exit(126)
    if nofile != "-":
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # If it cannot be set, the supervisor's stays: a higher limit never stops a program.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (int(nofile), hard))
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - the point of a trampoline; no shell involved
    except OSError as exc:
        sys.stderr.write(f"trampoline: cannot run {argv[0]}: {exc.strerror}\n")
        os._exit(127)


main()
