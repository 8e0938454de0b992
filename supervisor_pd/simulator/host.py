"""Build a simulated host: a fixture tree (sysfs, /proc, /dev, /etc) and a bin folder.

The tree is what discovery reads through `SUPERVISOR_PD_HOST_ROOT`; the bin folder holds the
simulated tools under their real names and goes first on PATH.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import shlex
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from supervisor_pd.simulator.fasttools import fast_wrapper
from supervisor_pd.simulator.profiles import HostProfile

MARKER = "simhost.json"
# MindIE's certificate tool of the KMC generation, imitated (certtool.py); the real one lives in
# the install's scripts/ folder, this one with the other simulated binaries.
CERT_TOOL = "config_mindie_server_tls_cert.py"
HOST_TOOLS = ("npu-smi", "hccn_tool", "lspci")
# The MindIE executables under their real names. The launchers (mindie_llm_server,
# mindie_motor_*) exec the binary in the real install, so here they run the same module.
MINDIE_BINARIES = {
    "mindieservice_daemon": "supervisor_pd.simulator.server",
    "mindie_llm_server": "supervisor_pd.simulator.server",
    "ms_controller": "supervisor_pd.simulator.controller",
    "mindie_motor_controller": "supervisor_pd.simulator.controller",
    "ms_coordinator": "supervisor_pd.simulator.coordinator",
    "mindie_motor_coordinator": "supervisor_pd.simulator.coordinator",
}


@dataclass(frozen=True)
class SimHost:
    profile: HostProfile
    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with the simulated host switched on."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        env["SUPERVISOR_PD_HOST_ROOT"] = str(self.root)
        env["SUPERVISOR_PD_SIM_HOST"] = str(self.root)
        for key, value in container_env(self.profile, self.root).items():
            env.setdefault(key, value)
        return env


# Modes are set explicitly, whatever the umask, so that two builds of a profile are identical.
ROOT_MODE = 0o750
DIR_MODE = 0o755
RUN_MODE = 0o700
FILE_MODE = 0o644
TOOL_MODE = 0o755
RUN = "run"  # device locks and fault markers of the simulated processes: live state, never compared
# The Server home's certificate folder (its config paths are `security/...` under the root, as
# under a real install): written by whoever sets TLS up, never compared, so that it does not
# make the host look changed. A host rebuilt for another reason starts without it.
SECURITY = "security"
SHM = "/dev/shm"  # noqa: S108 (a mount point in the fixture's mount table)
# The simulated model weights; their folder and files have the modes MindIE allows at most
# (SafePath limits: model_deploy_config.cpp:467, safe_io.cpp:30).
WEIGHTS = "model/llama3-8b"
WEIGHTS_DIR_MODE = 0o750
WEIGHTS_FILE_MODE = 0o640


def container_env(profile: HostProfile, root: Path) -> dict[str, str]:
    """The variables the container has: the profile's, and the simulated weights where a pod spec
    would name the mounted ones (the sample configs' modelWeightPath is a folder this machine lacks)."""
    return {**profile.env, "MINDIE_MODEL_WEIGHT_PATH": str(root / WEIGHTS)}


def build_sim_host(profile: HostProfile, root: Path) -> SimHost:
    """The simulated host for `profile` at `root`, built only when what is there differs.

    A complete host of the same content (wrappers included: they name `root` and this
    interpreter) is reused as it is: nothing is written. Otherwise the host is built in a staging
    folder next to `root` and swapped into place, so a reader never sees a half-built host. A
    `root` that is not a simulated host (no simhost.json) is never replaced: FileExistsError.
    """
    files = host_files(profile, root)
    if os.path.lexists(root):
        _check_replaceable(root)
        if _matches(root, files):
            return SimHost(profile, root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".staging", dir=root.parent))
    try:
        _materialise(staging, files)
        _swap_into_place(staging, root)
    finally:
        if os.path.lexists(staging):
            shutil.rmtree(staging)
    return SimHost(profile, root)


def host_files(profile: HostProfile, root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the host: relative path -> (content, mode)."""
    files: dict[str, tuple[bytes, int]] = {}

    def add(path: str, text: str, mode: int = FILE_MODE) -> None:
        files[path] = (text.encode(), mode)

    add(MARKER, json.dumps(profile.to_json(), indent=2))
    # The root doubles as the mindie_llm package root: `mindie_llm_server` points
    # MINDIE_LLM_HOME_PATH at the bin folder's parent, and the Server takes it as its home (where
    # its certificate paths start) only if it holds __init__.py (server/tlsconf.py home_path).
    add("__init__.py", "")
    for node, cpus in profile.numa_cpus.items():
        add(f"sys/devices/system/node/node{node}/cpulist", cpus + "\n")
    for chip in profile.chips:
        device = f"sys/bus/pci/devices/{chip.bdf}"
        add(f"{device}/numa_node", f"{chip.numa_node}\n")
        add(f"{device}/vendor", "0x19e5\n")
        add(f"{device}/device", f"0x{profile.pci_device}\n")
        add(f"dev/davinci{chip.phy_id}", "")
    for name in ("davinci_manager", "devmm_svm", "hisi_hdc"):
        add(f"dev/{name}", "")

    if profile.cgroup == "v2":
        add("proc/self/cgroup", "0::/\n")
        add("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
        add("sys/fs/cgroup/cpuset.cpus.effective", profile.container_cpus + "\n")
    else:
        add("proc/self/cgroup", "6:cpuset:/\n5:cpu,cpuacct:/\n1:name=systemd:/\n")
        add("sys/fs/cgroup/cpuset/cpuset.cpus", profile.container_cpus + "\n")
        add("sys/fs/cgroup/cpuset/cpuset.effective_cpus", profile.container_cpus + "\n")
    # Ports are real ports on this machine, so the simulated host reports the real range.
    real_range = Path("/proc/sys/net/ipv4/ip_local_port_range")
    add("proc/sys/net/ipv4/ip_local_port_range", real_range.read_text() if real_range.exists() else "32768\t60999\n")
    if profile.hccn_conf:
        lines = [f"address_{phy}={ip}\nnetmask_{phy}=255.255.0.0" for phy, ip in sorted(profile.hccn_conf.items())]
        add("etc/hccn.conf", "\n".join(lines) + "\n")

    # What the preflight checks read (supervisor-pd doctor): the /dev/shm mount, the driver's
    # version file, jemalloc where MindIE's boot.sh looks for it, and the model weights.
    add("proc/self/mounts", f"tmpfs {SHM} tmpfs rw,nosuid,nodev,size={profile.shm_size} 0 0\n")
    add("usr/local/Ascend/driver/version.info", f"Version={profile.driver_version}\n")
    stand_in = _jemalloc_stand_in()
    if profile.jemalloc and stand_in is not None:
        files[f"usr/lib/{_multiarch()}/libjemalloc.so.2"] = (stand_in, FILE_MODE)
    add(f"{WEIGHTS}/config.json", json.dumps(profile.weights, indent=2) + "\n", WEIGHTS_FILE_MODE)

    tools = [tool for tool in HOST_TOOLS if tool != "hccn_tool" or profile.hccn_tool]
    for tool in tools:
        slow = wrapper_script("supervisor_pd.simulator.hosttools", [tool], root)
        add(f"bin/{tool}", fast_wrapper(tool, profile, root, slow), TOOL_MODE)
    for name, module in MINDIE_BINARIES.items():
        add(f"bin/{name}", wrapper_script(module, [], root), TOOL_MODE)
    add(f"bin/{CERT_TOOL}", python_wrapper("supervisor_pd.simulator.certtool", root), TOOL_MODE)
    return files


def _multiarch() -> str:
    # sys.implementation, not sysconfig: sysconfig reads the environment, which activate never does.
    return getattr(sys.implementation, "_multiarch", "") or f"{platform.machine()}-linux-gnu"


def _jemalloc_stand_in() -> bytes | None:
    """A harmless shared object to stand in for libjemalloc.so.2 (the C library's libdl, empty
    since glibc 2.34): the Servers get it in LD_PRELOAD, and the loader must be able to load it."""
    for folder in (f"/lib/{_multiarch()}", f"/usr/lib/{_multiarch()}", "/lib64", "/usr/lib64"):
        candidate = Path(folder) / "libdl.so.2"
        if candidate.is_file():
            return candidate.read_bytes()
    return None


def wrapper_script(module: str, args: list[str], root: Path) -> str:
    """A shell wrapper that runs `python -m module args... "$@"` with this interpreter. It passes
    on the path it was run by (SUPERVISOR_PD_SIM_ARGV0), which a real binary finds in
    /proc/self/exe: the simulated Server derives its install folder and home from it."""
    command = " ".join(shlex.quote(part) for part in [sys.executable, "-m", module, *args])
    host = shlex.quote(str(root))
    return f'#!/bin/sh\nSUPERVISOR_PD_SIM_HOST={host} SUPERVISOR_PD_SIM_ARGV0="$0" exec {command} "$@"\n'


def python_wrapper(module: str, root: Path) -> str:
    """A Python script that runs `module` with this interpreter, whichever python3 runs it: MindIE's
    tools are called as `python3 <tool>.py ...`."""
    return (
        "#!/usr/bin/env python3\n"
        "import os, sys\n"
        f"os.environ['SUPERVISOR_PD_SIM_HOST'] = {str(root)!r}\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}, '-m', {module!r}, *sys.argv[1:]])\n"
    )


def _folders(files: dict[str, tuple[bytes, int]]) -> dict[str, int]:
    """Every folder of the host, the root as "", with its mode."""
    folders = {"": ROOT_MODE, RUN: RUN_MODE}
    for path in files:
        parent = PurePosixPath(path).parent
        while str(parent) != ".":
            weights = str(parent).startswith(PurePosixPath(WEIGHTS).parts[0])
            folders.setdefault(str(parent), WEIGHTS_DIR_MODE if weights else DIR_MODE)
            parent = parent.parent
    return folders


def _check_replaceable(root: Path) -> None:
    if root.is_symlink() or not root.is_dir() or not (root / MARKER).is_file():
        raise FileExistsError(
            errno.EEXIST, f"it exists and is not a simulated host (no {MARKER}); refusing to replace it", str(root)
        )


def _matches(root: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """Whether `root` holds exactly `files` and their folders (run/ and security/ aside), with the
    same modes."""
    folders = _folders(files)
    seen_files: set[str] = set()
    seen_folders: set[str] = set()
    for top, dirs, names in os.walk(root):
        relative = os.path.relpath(top, root)
        here = "" if relative == "." else relative
        if not here and Path(top, SECURITY).is_dir() and not Path(top, SECURITY).is_symlink():
            dirs[:] = [name for name in dirs if name != SECURITY]
        seen_folders.add(here)
        if not _same_mode(Path(top), folders.get(here), stat.S_ISDIR):
            return False
        if here == RUN:
            dirs[:] = []  # the processes' own state
            continue
        for name in dirs:
            if Path(top, name).is_symlink():  # os.walk lists it with the folders but does not enter it
                return False
        for name in names:
            path = f"{here}/{name}" if here else name
            seen_files.add(path)
            expected = files.get(path)
            if expected is None or not _same_mode(Path(top, name), expected[1], stat.S_ISREG):
                return False
            if Path(top, name).read_bytes() != expected[0]:
                return False
    return seen_files == set(files) and seen_folders == set(folders)


def _same_mode(path: Path, mode: int | None, kind: Callable[[int], bool]) -> bool:
    if mode is None:
        return False
    info = path.lstat()
    return kind(info.st_mode) and stat.S_IMODE(info.st_mode) == mode


def _materialise(folder: Path, files: dict[str, tuple[bytes, int]]) -> None:
    for relative, mode in sorted(_folders(files).items()):
        path = folder / relative if relative else folder
        path.mkdir(exist_ok=True)
        path.chmod(mode)
    for relative, (content, mode) in files.items():
        descriptor = os.open(folder / relative, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            os.fchmod(handle.fileno(), mode)


def _swap_into_place(staging: Path, root: Path) -> None:
    """Put `staging` at `root`: a rename when nothing is there, else an atomic exchange (after
    which `staging` holds the old host, for the caller to remove)."""
    if not os.path.lexists(root):
        staging.rename(root)
        return
    if _exchange(staging, root):
        return
    # No RENAME_EXCHANGE here: move the old host aside, then the new one in. A reader may find no
    # host for that moment, never a half-built one.
    aside = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=root.parent))
    root.rename(aside / "host")
    staging.rename(root)
    shutil.rmtree(aside)


def _exchange(first: Path, second: Path) -> bool:
    """renameat2(RENAME_EXCHANGE): swap two paths atomically. False where the call or the flag is
    not supported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))
