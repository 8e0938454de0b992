"""The bin wrappers' precomputed answers are the Python tool's, byte for byte, for every precomputed
argv of every profile; anything else, and any fault, still reaches the Python tool."""

from __future__ import annotations

import fcntl
import os
import subprocess

import pytest

from supervisor_pd.simulator import hosttools
from supervisor_pd.simulator.fasttools import FAULT_VARIABLES, known_argvs
from supervisor_pd.simulator.host import SimHost, build_sim_host
from supervisor_pd.simulator.hostfaults import clear_host_faults, write_host_faults
from supervisor_pd.simulator.profiles import PROFILES

# A Python that cannot start: whatever answers under it answered without Python.
NO_PYTHON = {"PYTHONHOME": "/nonexistent", "PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimHost]:
    base = tmp_path_factory.mktemp("hosts")
    return {name: build_sim_host(profile, base / name) for name, profile in PROFILES.items()}


def wrapper(host: SimHost, tool: str, args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    done = subprocess.run([str(host.bin_dir / tool), *args], env=env, capture_output=True, timeout=30, check=False)
    return done.returncode, done.stdout, done.stderr


def python_tool(host: SimHost, tool: str, args: list[str], monkeypatch, capfdbinary) -> tuple[int, bytes, bytes]:  # type: ignore[no-untyped-def]
    """What `python -m supervisor_pd.simulator.hosttools tool args` does, in this process."""
    monkeypatch.setenv("SUPERVISOR_PD_SIM_HOST", str(host.root))
    for name in FAULT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    code = hosttools.main([tool, *args])
    captured = capfdbinary.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_precomputed_answer_is_the_python_tools(name: str, hosts, monkeypatch, capfdbinary) -> None:  # type: ignore[no-untyped-def]
    host = hosts[name]
    tools = [tool for tool in ("npu-smi", "hccn_tool", "lspci") if (host.bin_dir / tool).exists()]
    assert ("hccn_tool" in tools) == host.profile.hccn_tool
    checked = 0
    for tool in tools:
        for args in known_argvs(tool, host.profile):
            fast = wrapper(host, tool, args, NO_PYTHON)
            assert fast == python_tool(host, tool, args, monkeypatch, capfdbinary), (tool, args)
            checked += 1
    assert checked >= 3 + 3 * len(host.profile.chips)


@pytest.mark.parametrize("variable", FAULT_VARIABLES)
def test_a_fault_variable_even_empty_reaches_the_python_tool(variable: str, hosts) -> None:  # type: ignore[no-untyped-def]
    host = hosts["800i-a2"]
    code, out, err = wrapper(host, "npu-smi", ["info", "-l"], {**NO_PYTHON, variable: ""})
    assert code != 0 and not out and b"Python" in err  # the Python that cannot start was started
    assert wrapper(host, "npu-smi", ["info", "-l"], host.environ({variable: ""}))[0] == 0


def test_the_fault_file_reaches_the_python_tool(hosts) -> None:  # type: ignore[no-untyped-def]
    host = hosts["800i-a3"]
    argv = ["-i", "4", "-link", "-g"]
    assert wrapper(host, "hccn_tool", argv, NO_PYTHON)[1] == b"link status: UP\n"
    write_host_faults(host.root, ["4:link-down"])
    try:
        assert wrapper(host, "hccn_tool", argv, host.environ({}))[1] == b"link status: DOWN\n"
    finally:
        clear_host_faults(host.root)
    assert wrapper(host, "hccn_tool", argv, NO_PYTHON)[1] == b"link status: UP\n"


@pytest.mark.parametrize(
    ("tool", "args"),
    [("npu-smi", ["info", "-l", "extra"]), ("npu-smi", ["info -l"]), ("lspci", ["-v"])],
    ids=["one argument more", "one argument with a space", "unknown option"],
)
def test_anything_else_reaches_the_python_tool(tool: str, args: list[str], hosts, monkeypatch, capfdbinary) -> None:  # type: ignore[no-untyped-def]
    host = hosts["800i-a2"]
    assert wrapper(host, tool, args, NO_PYTHON)[0] != 0  # needed Python
    assert wrapper(host, tool, args, host.environ({})) == python_tool(host, tool, args, monkeypatch, capfdbinary)


def test_the_summary_follows_the_device_locks_in_python(hosts, monkeypatch, capfdbinary) -> None:  # type: ignore[no-untyped-def]
    """Once a simulated Server has made a chip's lock file, the summary is the Python tool's: it
    reads which locks are held (HBM in use), which the shell cannot."""
    host = hosts["800i-a2"]
    idle = wrapper(host, "npu-smi", ["info"], NO_PYTHON)
    assert idle[0] == 0 and b"3161 / 65536" in idle[1]
    lock = host.root / "run" / "davinci0.lock"
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert wrapper(host, "npu-smi", ["info"], NO_PYTHON)[0] != 0  # needed Python
        busy = wrapper(host, "npu-smi", ["info"], host.environ({}))
        assert busy == python_tool(host, "npu-smi", ["info"], monkeypatch, capfdbinary)
        assert b"58000/ 65536" in busy[1] and b"3168 / 65536" in busy[1]  # chip 0 in use, chip 1 not
    finally:
        os.close(descriptor)
        lock.unlink()
