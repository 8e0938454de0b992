"""Preflight checks of the host: driver, chip health, device IPs and links, /dev/shm, file limit,
jemalloc, disk. Each returns a Check; none raises. Host tools run in one bounded pool, each
within SUPERVISOR_PD_TOOL_TIMEOUT: the link runs are asked before the health table is read, so a
16-chip host costs about two tool runs of wall time.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from supervisor_pd.doctor.report import Check, Status
from supervisor_pd.platform import npuhealth
from supervisor_pd.platform.facts import Chip, HostFacts
from supervisor_pd.platform.hostfs import HostFS
from supervisor_pd.platform.libs import JEMALLOC
from supervisor_pd.platform.toolpool import ToolPool
from supervisor_pd.platform.tools import ToolError, ToolResult
from supervisor_pd.settings import Settings, env_name

GIB = 1 << 30
MIB = 1 << 20
# The single-container deployment mounts a 16 Gi memory volume at /dev/shm
# (mindie_service_single_container.yaml:120); the image guide's smallest example is 1g.
SHM = "/dev/shm"  # noqa: S108 (the mount point examined, not a place to write)
SHM_WANTED = 16 * GIB
SHM_LEAST = 1 * GIB
DRIVER_VERSION_FILE = "/usr/local/Ascend/driver/version.info"
LOG_DISK_LEAST = 100 * MIB
LOG_DISK_WANTED = 2 * GIB


@dataclass(frozen=True)
class HostView:
    """What the host checks read: settings, facts, the children's environment, this process's file limit."""

    settings: Settings
    facts: HostFacts
    environ: Mapping[str, str]
    open_files: int  # the soft RLIMIT_NOFILE the children start with
    pool: ToolPool  # every tool run of the checks: bounded, each within SUPERVISOR_PD_TOOL_TIMEOUT

    @property
    def host(self) -> HostFS:
        return HostFS(self.settings.host_root)

    def tool(self, argv: list[str]) -> Future[ToolResult]:
        return self.pool.submit(argv)


def current_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- driver and npu-smi ------------------------------------------------------------------


def check_npu(view: HostView) -> Check:
    chips = view.facts.chips
    names = sorted({chip.chip_name for chip in chips})
    version = _driver_version(view.host)
    driver = f"driver {version}" if version else f"driver version unknown ({DRIVER_VERSION_FILE} not found)"
    return Check(
        "npu",
        Status.PASS,
        f"npu-smi lists {len(chips)} usable chip(s) ({', '.join(names)}); {driver}",
        source="npu-smi info -l / -m (discovery)",
    )


def _driver_version(host: HostFS) -> str | None:
    text = host.read_text(DRIVER_VERSION_FILE) or ""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "Version" and value.strip():
            return value.strip()
    return None


# --- chip health --------------------------------------------------------------------------


def check_chip_health(view: HostView) -> Check:
    source = "npu-smi info (Health column), npu-smi info -t health for a chip that is not OK"
    try:
        result = view.tool(npuhealth.summary_argv()).result()
        if result.returncode != 0:
            raise ToolError(result.failure())
        readings = {(r.npu_id, r.chip_id): r for r in npuhealth.parse_summary(result.stdout)}
    except (ToolError, npuhealth.ParseError) as exc:
        return Check(
            "chip-health",
            Status.WARN,
            f"health not read: {exc}",
            "check that `npu-smi info` answers in this container",
            source,
        )
    unread = [chip for chip in view.facts.chips if (chip.npu_id, chip.chip_id) not in readings]
    bad = [chip for chip in view.facts.chips if (r := readings.get((chip.npu_id, chip.chip_id))) and r.health != "OK"]
    asked = [(chip, view.tool(npuhealth.health_argv(chip.npu_id, chip.chip_id))) for chip in bad]
    details = [_health_detail(chip, readings[(chip.npu_id, chip.chip_id)].health, answer) for chip, answer in asked]
    failing = [text for text, status in details if status is Status.FAIL]
    warning = [text for text, status in details if status is Status.WARN]
    warning += [f"NPU {chip.npu_id} chip {chip.chip_id}: not in `npu-smi info`" for chip in unread]
    if failing:
        return Check(
            "chip-health",
            Status.FAIL,
            "; ".join(failing + warning),
            "replace or reset the chip (npu-smi set -t reset), or leave it out with ASCEND_VISIBLE_DEVICES",
            source,
        )
    if warning:
        return Check("chip-health", Status.WARN, "; ".join(warning), "see `npu-smi info -t health`", source)
    return Check("chip-health", Status.PASS, f"all {len(view.facts.chips)} chip(s) OK", source=source)


def _health_detail(chip: Chip, health: str, answer: Future[ToolResult]) -> tuple[str, Status]:
    where = f"NPU {chip.npu_id} chip {chip.chip_id}: health {health}"
    status = Status.WARN if health.lower() == "warning" else Status.FAIL
    try:
        result = answer.result()
        detail = npuhealth.parse_health(result.stdout) if result.returncode == 0 else None
    except (ToolError, npuhealth.ParseError):
        detail = None
    if detail is not None and detail.error_code:
        where += f", error code {detail.error_code}"
    return where, status


# --- device IPs and links -----------------------------------------------------------------


def has_real_ip(chip: Chip) -> bool:
    return bool(chip.device_ip) and chip.device_ip_source != "placeholder"


def check_device_ips(view: HostView) -> Check:
    source = "hccn_tool -i N -ip -g, /etc/hccn.conf (discovery)"
    missing = [chip.phy_id for chip in view.facts.chips if not has_real_ip(chip)]
    if missing:
        return Check(
            "device-ips",
            Status.WARN,
            f"no device IP for NPU(s) {', '.join(map(str, missing))}: placeholder IPs are planned",
            f"configure them (hccn_tool -i N -ip -s address A netmask M) or mount /etc/hccn.conf; "
            f"{env_name('device_ips')}=strict makes this an error",
            source,
        )
    sources = sorted({chip.device_ip_source for chip in view.facts.chips})
    return Check("device-ips", Status.PASS, f"every chip has one ({', '.join(sources)})", source=source)


Asked = list[tuple[Chip, "Future[ToolResult]", "Future[ToolResult]"]]


def ask_links(view: HostView) -> Asked:
    """Starts the link and network-health runs of every chip with a device IP (both at once: the
    second answer is only read when the link is up)."""
    return [
        (chip, view.tool(npuhealth.link_argv(chip.phy_id)), view.tool(npuhealth.net_health_argv(chip.phy_id)))
        for chip in view.facts.chips
        if has_real_ip(chip)
    ]


def check_links(asked: Asked) -> Check:
    source = "hccn_tool -i N -link -g, -net_health -g (MindIE-LLM rank_table_file_configuration.md:43-53)"
    if not asked:
        return Check("links", Status.WARN, "not checked: no chip has a device IP", "see the device-ips check", source)
    answers = [_link(chip, link, health) for chip, link, health in asked]
    down = [text for text, status in answers if status is Status.FAIL]
    doubtful = [text for text, status in answers if status is Status.WARN]
    if down:
        return Check(
            "links",
            Status.FAIL,
            "; ".join(down + doubtful),
            "check the cable and switch port of each link that is down (hccn_tool -i N -link_stat -g)",
            source,
        )
    if doubtful:
        return Check(
            "links",
            Status.WARN,
            "; ".join(doubtful),
            "check the detect IP and gateway of those devices (hccn_tool -i N -netdetect -g)",
            source,
        )
    return Check("links", Status.PASS, f"{len(asked)} link(s) UP, network health Success", source=source)


def _link(chip: Chip, link_answer: Future[ToolResult], health_answer: Future[ToolResult]) -> tuple[str, Status]:
    name = f"NPU {chip.phy_id}"
    try:
        result = link_answer.result()
        if result.returncode != 0:
            return f"{name}: link not read ({result.failure()})", Status.WARN
        link = npuhealth.parse_link(result.stdout)
    except (ToolError, npuhealth.ParseError) as exc:
        return f"{name}: link not read ({exc})", Status.WARN
    if link != "UP":
        return f"{name}: link {link}", Status.FAIL
    try:
        result = health_answer.result()
        health = npuhealth.parse_net_health(result.stdout) if result.returncode == 0 else result.failure()
    except (ToolError, npuhealth.ParseError) as exc:
        health = str(exc)
    if health != "Success":
        return f"{name}: network health {health}", Status.WARN
    return f"{name}: UP", Status.PASS


# --- /dev/shm -----------------------------------------------------------------------------


def shm_size(host: HostFS) -> int | None:
    """The size of the tmpfs at /dev/shm, from the mount table (tmpfs `size=`), else statvfs."""
    text = host.read_text("/proc/self/mounts") or ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == SHM:
            for option in fields[3].split(","):
                if option.startswith("size="):
                    return _size(option[5:])
    path = host.path(SHM)
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_blocks * stats.f_frsize


def _size(text: str) -> int | None:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower()
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    return int(number) * scale if number.isdigit() else None


def check_shm(view: HostView) -> Check:
    source = "mindie_service_single_container.yaml:120 (16Gi); image_usage_guide.md:58 (--shm-size)"
    size = shm_size(view.host)
    fix = "give the container a larger /dev/shm: `docker run --shm-size=16g`, or an emptyDir medium Memory of 16Gi"
    if size is None:
        return Check("shm", Status.FAIL, f"{SHM} is not mounted", fix, source)
    shown = f"{SHM} is {_human(size)}"
    if size < SHM_LEAST:
        return Check("shm", Status.FAIL, f"{shown}, less than the 1 GiB MindIE's guide asks for at least", fix, source)
    if size < SHM_WANTED:
        return Check("shm", Status.WARN, f"{shown}, less than the 16 GiB of MindIE's deployment", fix, source)
    return Check("shm", Status.PASS, shown, source=source)


def _human(size: int) -> str:
    if size >= GIB:
        return f"{size / GIB:.1f} GiB"
    return f"{size / MIB:.0f} MiB"


# --- open files ---------------------------------------------------------------------------


def check_open_files(view: HostView, wanted: int) -> Check:
    """`wanted`: what the busiest Server needs (its maxLinkNum connections plus its own files)."""
    source = "ServerConfig.maxLinkNum (config<n>.json); RLIMIT_NOFILE"
    seen = f"soft limit {view.open_files} for the Servers, which need about {wanted}"
    if view.open_files < wanted:
        return Check(
            "open-files",
            Status.WARN,
            seen,
            "raise it: `docker run --ulimit nofile=65536:65536`, or the container runtime's default",
            source,
        )
    return Check("open-files", Status.PASS, seen, source=source)


# --- jemalloc -----------------------------------------------------------------------------


def check_jemalloc(view: HostView, preload: str | None) -> Check:
    """`preload`: the library the Servers get in LD_PRELOAD (None: none found)."""
    source = "boot.sh:28-37 (LD_PRELOAD); pd_separation_service_deployment.md:388"
    if preload is None:
        return Check(
            "jemalloc",
            Status.WARN,
            f"{JEMALLOC} not found under /usr/lib or /usr/lib64 (as a regular file owned by root, writable by no "
            "one else): the Servers run with the C library's allocator",
            "install jemalloc in the image (e.g. apt-get install libjemalloc2)",
            source,
        )
    return Check("jemalloc", Status.PASS, f"{preload}, in the Servers' LD_PRELOAD", source=source)


# --- disk for logs ------------------------------------------------------------------------


def check_log_disk(view: HostView, folders: list[Path]) -> Check:
    source = "MINDIE_LOG_PATH (default ~/mindie/log); supervisor_pd's state folder"
    seen: list[str] = []
    least: tuple[int, Path] | None = None
    for folder in folders:
        existing = _existing(folder)
        try:
            stats = os.statvfs(existing)
        except OSError:
            continue
        free = stats.f_bavail * stats.f_frsize
        seen.append(f"{folder}: {_human(free)} free")
        if least is None or free < least[0]:
            least = (free, folder)
    if least is None:
        return Check("log-disk", Status.WARN, "no log folder could be examined", "", source)
    fix = f"free space on the file system of {least[1]}, or point MINDIE_LOG_PATH elsewhere"
    if least[0] < LOG_DISK_LEAST:
        return Check("log-disk", Status.FAIL, "; ".join(seen), fix, source)
    if least[0] < LOG_DISK_WANTED:
        return Check("log-disk", Status.WARN, "; ".join(seen), fix, source)
    return Check("log-disk", Status.PASS, "; ".join(seen), source=source)


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
