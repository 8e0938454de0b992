"""Spawning, the guardian and the leftover sweep, with real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor_pd.runtime import cgroups, processes
from supervisor_pd.runtime.spec import HttpCheck, Kind, ProcessSpec
from tests.simstack import wait_until
from tests.superstack import alive


def spec(tmp_path: Path, argv: tuple[str, ...]) -> ProcessSpec:
    check = HttpCheck("127.0.0.1", 1, "/")
    return ProcessSpec(
        name="t",
        kind=Kind.SERVER,
        argv=argv,
        cwd=tmp_path / "cwd",
        env=dict(os.environ),
        cpus=None,
        up=(check,),
        live=check,
        ready=None,
        start_deadline=1.0,
    )


def test_spawn_sets_group_cpus_and_working_folder(tmp_path: Path) -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    child = processes.spawn(spec(tmp_path, ("sleep", "30")), (cpu,))
    try:
        wait_until(lambda: Path(f"/proc/{child.pid}/comm").read_text().strip() == "sleep", what="the exec")
        assert os.sched_getaffinity(child.pid) == {cpu}
        assert os.getpgid(child.pid) == child.pid  # its own process group...
        assert os.getsid(child.pid) == os.getsid(0) != child.pid  # ...but not a session of its own
        # What MindIE's Server does first (llm_daemon.cpp main): it must succeed in a child.
        probe = processes.spawn(spec(tmp_path, (sys.executable, "-c", "import os; os.setpgrp()")), None)
        assert probe.wait(10) == 0
        assert Path(f"/proc/{child.pid}/cwd").resolve() == (tmp_path / "cwd").resolve()
    finally:
        child.kill()
        child.wait()


def test_a_missing_program_exits_127(tmp_path: Path) -> None:
    child = processes.spawn(spec(tmp_path, ("no-such-program-here",)), None)
    assert child.wait(10) == 127
    assert b"cannot run no-such-program-here" in child.stderr.read()  # type: ignore[union-attr]


def test_children_die_with_the_thread_that_spawned_them(tmp_path: Path) -> None:
    # A short-lived parent spawns a child through the trampoline and exits at once.
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from supervisor_pd.runtime import cgroups, processes
        from tests.integration.test_processes import spec
        child = processes.spawn(spec(Path({str(tmp_path)!r}), ("sleep", "60")), None)
        print(child.pid, flush=True)
    """)
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    pid = int(parent.stdout.split()[0])
    wait_until(lambda: not alive(pid), what="the orphan to die with its parent")


def test_guardian_kills_the_groups_of_a_dead_supervisor(tmp_path: Path) -> None:
    guardian = processes.Guardian()
    guardian.start()
    group = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True)
    wait_until(
        lambda: (
            len(subprocess.run(["pgrep", "-g", str(group.pid)], capture_output=True, text=True).stdout.split()) >= 2
        ),
        what="both sleepers",
    )
    guardian.watch(group.pid)
    guardian.close()  # what the kernel does when the supervisor dies
    assert group.wait(10) == -signal.SIGKILL
    wait_until(
        lambda: subprocess.run(["pgrep", "-g", str(group.pid)], capture_output=True).returncode == 1,
        what="the whole group gone",
    )


def test_sweep_kills_only_what_is_still_ours(tmp_path: Path) -> None:
    pidfile = processes.PidFile(tmp_path / "children.json")
    ours = subprocess.Popen(["sleep", "60"], start_new_session=True)
    wait_until(lambda: processes.start_time(ours.pid) is not None, what="the process")
    reused = subprocess.Popen(["sleep", "60"], start_new_session=True)
    pidfile.write("", {"server-1": (ours.pid, processes.start_time(ours.pid)), "server-2": (reused.pid, 1)})
    assert pidfile.sweep() == ["server-1"]
    assert ours.wait(10) == -signal.SIGKILL
    assert reused.poll() is None  # a different start time: not ours, left alone
    reused.kill()
    reused.wait()


def test_reap_collects_any_child() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 5"])
    wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1].startswith("Z"), what="a zombie")
    assert (child.pid, 5) in processes.reap()
    child.returncode = 5


def _strays(tmp_path: Path, tag: str) -> tuple[subprocess.Popen[bytes], int]:
    """A child through the trampoline with `tag`, which starts a worker that leaves its session
    (as worker launchers do) and is orphaned at once; returns the child and the worker's pid."""
    pidfile = tmp_path / "worker.pid"
    script = f"(setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' &); exec sleep 60"
    child = processes.spawn(spec(tmp_path, ("sh", "-c", script)), None, tag=tag)
    worker = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the worker"))
    assert os.getsid(worker) == worker != child.pid  # it left the child's session and group
    return child, worker


def test_leftovers_find_a_worker_that_left_the_group(tmp_path: Path) -> None:
    child, worker = _strays(tmp_path, "t0k3n/server-9")
    try:
        table = processes.process_table()
        assert table[worker].ppid != child.pid  # orphaned: no descendant walk finds it
        assert worker not in processes.leftovers(child.pid, "t0k3n/server-9", table, with_tagged=False)
        found = processes.leftovers(child.pid, "t0k3n/server-9", table, with_tagged=True)
        assert {child.pid, worker} <= found
        assert worker not in processes.leftovers(child.pid, "t0k3n/server-1", table, with_tagged=True)
    finally:
        for pid in (child.pid, worker):
            os.kill(pid, signal.SIGKILL)
        child.wait()


def test_the_guardian_kills_workers_that_left_their_group(tmp_path: Path) -> None:
    guardian = processes.Guardian()
    guardian.start("t0k3n")
    child, worker = _strays(tmp_path, "t0k3n/server-2")
    guardian.watch(child.pid)
    guardian.close()  # what the kernel does when the supervisor dies
    assert child.wait(10) == -signal.SIGKILL
    wait_until(lambda: not alive(worker), what="the worker outside the group to be killed too")


def test_the_sweep_kills_workers_of_a_dead_supervisor_that_left_their_group(tmp_path: Path) -> None:
    child, worker = _strays(tmp_path, "d3ad/server-3")
    pidfile = processes.PidFile(tmp_path / "children.json")
    pidfile.write("d3ad", {"server-3": (child.pid, processes.start_time(child.pid))})
    found = pidfile.sweep()
    assert found == ["server-3", "1 process(es) that had left their group"]
    assert child.wait(10) == -signal.SIGKILL
    wait_until(lambda: not alive(worker), what="the worker to be killed")


def test_a_child_gets_back_the_file_limit_the_supervisor_raised(tmp_path: Path) -> None:
    out = tmp_path / "limit"
    child = processes.spawn(spec(tmp_path, ("sh", "-c", f"ulimit -Sn > {out}")), None, file_limit=321)
    assert child.wait(10) == 0
    assert out.read_text().strip() == "321"


@pytest.fixture
def owned_cgroup(tmp_path: Path) -> Iterator[Path]:
    """A cgroup v2 folder of this test's own, where the machine lets us make one."""
    own = cgroups.own_cgroup()
    if own is None:
        pytest.skip("no cgroup v2 hierarchy is mounted here")
    folder = own / f"test-{os.getpid()}-{tmp_path.name}"
    try:
        folder.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup below {own}: {exc.strerror}")
    try:
        yield folder
    finally:
        for child in sorted(folder.rglob("*/"), reverse=True):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()


def test_a_cgroup_finds_a_worker_that_left_its_group_and_cleared_its_environment(
    tmp_path: Path, owned_cgroup: Path
) -> None:
    taken = cgroups.Cgroups.take("t3st", own=owned_cgroup)
    assert taken is not None
    pidfile = tmp_path / "worker.pid"
    # Only a cgroup can tell this one apart: no group, no session, no tag, no parent of ours.
    script = f"(env -i setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' &); exec sleep 60"
    child = processes.spawn(spec(tmp_path, ("sh", "-c", script)), None, tag="t3st/server-5", cgroup=taken.folder("t"))
    worker = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the worker"))
    assert b"SUPERVISOR_PD_PROCESS" not in Path(f"/proc/{worker}/environ").read_bytes()
    assert {child.pid, worker} <= taken.members("t")
    taken.kill("t")
    assert child.wait(10) == -signal.SIGKILL
    wait_until(lambda: not alive(worker), what="the worker killed with its cgroup")
    wait_until(lambda: not taken.members("t"), what="the cgroup empty")
    taken.close()
    assert not taken.base.exists()


def test_a_dead_supervisors_cgroups_are_swept(tmp_path: Path, owned_cgroup: Path) -> None:
    taken = cgroups.Cgroups.take("d3ad", own=owned_cgroup)
    assert taken is not None
    child = processes.spawn(spec(tmp_path, ("sleep", "60")), None, cgroup=taken.folder("server-1"))
    wait_until(lambda: child.pid in taken.members("server-1"), what="the child in its cgroup")
    pidfile = processes.PidFile(tmp_path / "children.json")
    pidfile.write("d3ad", {}, taken.base)
    assert pidfile.sweep() == ["1 process(es) left in its cgroups"]
    assert child.wait(10) == -signal.SIGKILL
    assert not taken.base.exists()


def test_a_cgroup_elsewhere_than_ours_is_never_swept(tmp_path: Path) -> None:
    assert cgroups.sweep(tmp_path / "not-a-supervisor-cgroup") == 0


def test_where_our_cgroup_is(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text("12:cpuset:/\n0::/kubepods/pod1/c0\n")
    (proc / "mountinfo").write_text(
        "30 25 0:26 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
        "31 25 0:27 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    )
    assert cgroups.own_cgroup(proc) == Path("/sys/fs/cgroup/c0")
    (proc / "cgroup").write_text("12:cpuset:/\n")  # cgroup v1 only
    assert cgroups.own_cgroup(proc) is None


def test_the_guardian_kills_the_cgroups_and_removes_them(tmp_path: Path, owned_cgroup: Path) -> None:
    taken = cgroups.Cgroups.take("gu4rd", own=owned_cgroup)
    assert taken is not None
    pidfile = tmp_path / "worker.pid"
    script = f"(env -i setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' &); exec sleep 60"
    child = processes.spawn(spec(tmp_path, ("sh", "-c", script)), None, cgroup=taken.folder("server-1"))
    worker = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the worker"))
    guardian = processes.Guardian()
    guardian.start("gu4rd")
    guardian.cgroups(taken.base)
    guardian.close()  # the supervisor died
    assert child.wait(10) == -signal.SIGKILL
    wait_until(lambda: not alive(worker), what="the worker killed with its cgroup")
    wait_until(lambda: not taken.base.exists(), what="the cgroups removed")


def test_cgroups_already_removed_are_no_error(tmp_path: Path, owned_cgroup: Path) -> None:
    taken = cgroups.Cgroups.take("g0ne", own=owned_cgroup)
    assert taken is not None
    taken.folder("server-1")
    (taken.base / "server-1").rmdir()
    taken.base.rmdir()  # the guardian got there first
    taken.close()
    assert cgroups.sweep(taken.base) == 0


def test_ports_in_use_is_the_bind_mindies_server_makes() -> None:
    """A listening port, and a port whose last connection lingers after its owner died, both count:
    a bind without SO_REUSEADDR fails on them (MindIE-LLM http_server.cpp IsPortUsed)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    try:
        assert processes.ports_in_use((port,)) == (port,)
        listener.close()
        accepted.close()  # the owner's side closes first: FIN-WAIT-2, then TIME_WAIT on `port`
        assert processes.ports_in_use((port,)) == (port,)
    finally:
        client.close()
        listener.close()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    unused = free.getsockname()[1]
    free.close()
    assert processes.ports_in_use((unused,)) == ()
