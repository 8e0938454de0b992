"""Discovery: ask the host tools and sysfs, return HostFacts. The only I/O before planning.

Order of questions (reference §7): `npu-smi info -l` and `-m` for the chips, /dev/davinciN and
the two visibility variables for what this container may use, lspci for A2/A3, `npu-smi info -t
board` and sysfs for NUMA, hccl.json / spod-info for A3 super-pod ids, hccn_tool or
/etc/hccn.conf for device IPs, cgroups for the CPU set. Questions that do not wait on another's
answer are asked at once (toolpool.py), the answers read in this order.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace

from supervisor_pd.errors import InputError
from supervisor_pd.platform import hccn, npusmi, pci
from supervisor_pd.platform.cpuset import container_cpuset, format_cpulist
from supervisor_pd.platform.facts import Chip, DeviceType, HostFacts, Level, Notice
from supervisor_pd.platform.hccljson import from_operator, operator_devices
from supervisor_pd.platform.hostfs import HostFS
from supervisor_pd.platform.numa import ephemeral_port_range, numa_nodes, pci_numa_node
from supervisor_pd.platform.toolpool import DEFAULT_CONCURRENCY, ToolPool
from supervisor_pd.platform.tools import ToolError, ToolResult, which
from supervisor_pd.platform.visibility import parse_id_list
from supervisor_pd.settings import Settings, env_name

_LIST = ["npu-smi", "info", "-l"]
_MAP = ["npu-smi", "info", "-m"]
Pending = Future[ToolResult]


@dataclass
class Discovery:
    settings: Settings
    host: HostFS
    environ: Mapping[str, str] | None
    notices: list[Notice]
    pool: ToolPool

    def note(self, level: Level, subject: str, message: str) -> None:
        self.notices.append(Notice(level, subject, message))

    def which(self, name: str) -> bool:
        return which(name, self.environ) is not None

    def ask(self, argv: list[str]) -> Pending:
        """Start a host tool from the PATH discovery was given; its answer comes later."""
        return self.pool.submit(argv)

    def required_output(self, pending: Pending, argv: list[str]) -> str:
        try:
            result = pending.result()
        except ToolError as exc:
            raise InputError(argv[0], f"{exc}; supervisor_pd needs it to discover the NPUs") from None
        if result.returncode != 0:
            raise InputError(argv[0], result.failure())
        return result.stdout


def _outcome(pending: Pending) -> ToolResult | ToolError:
    try:
        return pending.result()
    except ToolError as exc:
        return exc


def discover(
    settings: Settings, environ: Mapping[str, str] | None = None, concurrency: int = DEFAULT_CONCURRENCY
) -> HostFacts:
    """Everything planning needs to know about this host. Raises InputError on unusable facts.

    Host tools are looked up on, and run with, `environ` (default: this process's environment),
    at most `concurrency` at a time: every question that does not wait on another's answer is
    asked at once, and the answers are read in the order of the questions, so the facts and
    notices are those of asking one after another."""
    with ToolPool(settings.tool_timeout, environ, concurrency) as pool:
        run = Discovery(settings, HostFS(settings.host_root), environ, [], pool)
        listed, mapped = run.ask(_LIST), run.ask(_MAP)
        lspci = run.ask(["lspci"]) if settings.device_type == "auto" and run.which("lspci") else None
        chips = _visible_chips(run, listed, mapped)
        device_type, type_source = _device_type(run, chips, lspci)
        operator = operator_devices(run, chips) if device_type is DeviceType.A3 else None
        if operator is not None:
            chips = [from_operator(chip, operator[0]) for chip in chips]
        # Every per-chip question at once: the board (NUMA), spod-info (an A3 without the
        # Operator's hccl.json) and hccn_tool (a chip with no device IP yet).
        boards = [run.ask(_chip_argv("board", chip)) for chip in chips]
        need_spod = device_type is DeviceType.A3 and operator is None
        spods = [run.ask(_chip_argv("spod-info", chip)) for chip in chips] if need_spod else []
        have_hccn = run.which("hccn_tool")
        ips = {
            chip.phy_id: run.ask(["hccn_tool", "-i", str(chip.phy_id), "-ip", "-g"])
            for chip in chips
            if have_hccn and not chip.device_ip
        }
        chips = [_with_numa(run, chip, board) for chip, board in zip(chips, boards, strict=True)]
        super_pod_id = operator[1] if operator is not None else None
        if need_spod:
            chips, super_pod_id = _super_pod(run, chips, spods)
        chips = _device_ips(run, chips, have_hccn, ips)
    cpus, cpuset_source = container_cpuset(run.host)
    return HostFacts(
        device_type=device_type,
        device_type_source=type_source,
        chips=tuple(sorted(chips, key=lambda chip: chip.logical_id)),
        numa_nodes=numa_nodes(run.host),
        container_cpus=cpus,
        cpuset_source=cpuset_source,
        ephemeral_ports=ephemeral_port_range(run.host),
        super_pod_id=super_pod_id,
        simulated=settings.simulate.value if settings.simulate else None,
        notices=tuple(run.notices),
    )


def _chip_argv(kind: str, chip: Chip) -> list[str]:
    return ["npu-smi", "info", "-t", kind, "-i", str(chip.npu_id), "-c", str(chip.chip_id)]


# --- which chips this container may use ------------------------------------------------


def _visible_chips(run: Discovery, listed: Pending, mapped: Pending) -> list[Chip]:
    listed_text = run.required_output(listed, _LIST)
    map_text = run.required_output(mapped, _MAP)
    try:
        listed = npusmi.parse_list(listed_text)
        mapped = npusmi.parse_map(map_text)
    except npusmi.ParseError as exc:
        raise InputError("npu-smi", f"printed something supervisor_pd cannot read ({exc})") from None
    if not listed or not mapped:
        raise InputError("npu-smi", "lists no NPU: no NPU is visible in this container (check the device mounts)")
    listed_ids = {npu.npu_id for npu in listed}
    stray = sorted({chip.npu_id for chip in mapped} - listed_ids)
    if stray:
        raise InputError("npu-smi", f"`info -m` shows NPU {stray[0]}, which `info -l` does not list")
    for npu in listed:
        dies = sum(1 for chip in mapped if chip.npu_id == npu.npu_id)
        if dies != npu.chip_count:
            run.note(
                Level.WARNING,
                "npu-smi",
                f"NPU {npu.npu_id}: `info -l` says {npu.chip_count} chip(s), `info -m` shows {dies}",
            )

    present = run.host.davinci_ids()
    phy_ids = _physical_ids(mapped, present)
    chips = [
        Chip(npu_id=m.npu_id, chip_id=m.chip_id, phy_id=phy, logical_id=-1, chip_name=m.chip_name)
        for m, phy in zip(mapped, phy_ids, strict=True)
    ]
    missing = sorted(chip.phy_id for chip in chips if chip.phy_id not in present)
    if missing and len(missing) == len(chips):
        raise InputError(
            "/dev",
            f"npu-smi lists NPU(s) {_ids(chip.phy_id for chip in chips)} but no /dev/davinciN node for them "
            "exists in this container: mount the devices (Ascend Docker Runtime / device plugin)",
        )
    if missing:
        run.note(Level.WARNING, "/dev", f"/dev/davinci{{{_ids(missing)}}} missing: those NPUs are not used")
        chips = [chip for chip in chips if chip.phy_id in present]
    # The runtime numbers every device node it can open, so logical ids are counted before
    # ASCEND_VISIBLE_DEVICES narrows down which of them this deployment uses.
    return _apply_visible_devices(run, _logical_ids(run, chips))


def _physical_ids(mapped: list[npusmi.MappedChip], present: set[int]) -> list[int]:
    if all(chip.phy_id is not None for chip in mapped):
        return [chip.phy_id for chip in mapped]  # type: ignore[misc]
    # Older npu-smi has no Phy-ID column. Inside a container its logic ids restart at 0 while
    # the device nodes keep their physical numbers, so pair them up in order.
    if len(present) == len(mapped):
        by_logic = sorted(range(len(mapped)), key=lambda i: mapped[i].logic_id)
        physical = sorted(present)
        ids = [0] * len(mapped)
        for position, index in enumerate(by_logic):
            ids[index] = physical[position]
        return ids
    return [chip.logic_id for chip in mapped]


def _apply_visible_devices(run: Discovery, chips: list[Chip]) -> list[Chip]:
    text = run.settings.ascend_visible_devices
    if text is None:
        return chips
    name = env_name("ascend_visible_devices")
    try:
        wanted = parse_id_list(text, allow_ranges=True)
    except ValueError as exc:
        raise InputError(name, f"{exc}; use physical NPU ids like 0-3,6") from None
    known = {chip.phy_id for chip in chips}
    absent = [device for device in wanted if device not in known]
    if absent:
        raise InputError(
            name,
            f"names NPU {absent[0]}, which is not on this host (npu-smi lists physical ids {_ids(known)})",
        )
    if set(wanted) != known:
        run.note(Level.INFO, name, f"limits this container to NPU(s) {_ids(wanted)} of {_ids(known)}")
    return [chip for chip in chips if chip.phy_id in wanted]


def _logical_ids(run: Discovery, chips: list[Chip]) -> list[Chip]:
    ordered = sorted(chips, key=lambda chip: (chip.phy_id, chip.chip_id))
    text = run.settings.ascend_rt_visible_devices
    if text is None:
        return [replace(chip, logical_id=index) for index, chip in enumerate(ordered)]
    name = env_name("ascend_rt_visible_devices")
    try:
        wanted = parse_id_list(text, allow_ranges=False)
    except ValueError as exc:
        raise InputError(name, f"{exc}; use logical ids in ascending order like 0,1,2,3") from None
    if wanted != sorted(wanted):
        raise InputError(name, f"{text!r} is not in ascending order, which the CANN runtime requires")
    if wanted and wanted[-1] >= len(ordered):
        raise InputError(
            name,
            f"names logical id {wanted[-1]}, but this container has {len(ordered)} NPU(s): ids 0..{len(ordered) - 1}",
        )
    # The runtime renumbers the listed devices from 0, so the Server sees these new ids.
    return [replace(ordered[old], logical_id=new) for new, old in enumerate(wanted)]


def _ids(values: object) -> str:
    return format_cpulist(values)  # type: ignore[arg-type]


# --- A2 or A3 ---------------------------------------------------------------------------


def _device_type(run: Discovery, chips: list[Chip], lspci: Pending | None) -> tuple[DeviceType, str]:
    chosen = run.settings.device_type
    if chosen != "auto":
        return DeviceType(chosen), f"{env_name('device_type')}={chosen}"
    if lspci is not None:
        result = _outcome(lspci)
        if isinstance(result, ToolResult) and result.returncode == 0:
            found = pci.device_type_from_lspci(result.stdout)
            if found is not None:
                pci_id = "d802" if found is DeviceType.A2 else "d803"
                return found, f"lspci (Device {pci_id})"
    per_npu = max(sum(1 for other in chips if other.npu_id == chip.npu_id) for chip in chips)
    name = chips[0].chip_name
    found = pci.device_type_from_chip(name, per_npu)
    if found is not None:
        return found, f"npu-smi chip name {name!r}"
    raise InputError(
        env_name("device_type"),
        f"cannot tell an 800I A2 from an A3: lspci shows no d802/d803 accelerator and chip name {name!r} "
        "is not known; set it to 800i-a2 or 800i-a3",
    )


# --- NUMA -------------------------------------------------------------------------------


def _with_numa(run: Discovery, chip: Chip, board: Pending) -> Chip:
    result = _outcome(board)
    if isinstance(result, ToolError) or result.returncode != 0:
        return chip
    bdf = npusmi.parse_board_bdf(result.stdout)
    if bdf is None:
        return chip
    return replace(chip, bdf=bdf, numa_node=pci_numa_node(run.host, bdf))


# --- A3 super pod -----------------------------------------------------------------------


def _super_pod(run: Discovery, chips: list[Chip], spods: list[Pending]) -> tuple[list[Chip], str | None]:
    def spod(chip: Chip, pending: Pending) -> tuple[Chip, str | None]:
        result = _outcome(pending)
        info = None
        if isinstance(result, ToolResult) and result.returncode == 0:
            info = npusmi.parse_spod_info(result.stdout)
        if info is None:
            return chip, None
        return replace(chip, super_device_id=info.sdid), info.super_pod_id

    answers = [spod(chip, pending) for chip, pending in zip(chips, spods, strict=True)]
    pods = {pod for _, pod in answers if pod is not None}
    if any(chip.super_device_id is None for chip, _ in answers):
        run.note(
            Level.WARNING,
            "npu-smi",
            "`info -t spod-info` gave no SDID for some A3 chips; their ranktable entries have no super_device_id",
        )
    return [chip for chip, _ in answers], min(pods) if pods else None


# --- device IPs -------------------------------------------------------------------------


def _device_ips(run: Discovery, chips: list[Chip], have_tool: bool, asked: dict[int, Pending]) -> list[Chip]:
    conf = hccn.parse_hccn_conf(run.host.read_text("/etc/hccn.conf") or "")

    def lookup(chip: Chip) -> tuple[Chip, str]:
        if chip.device_ip:
            return chip, ""
        why = "hccn_tool is not on PATH"
        if have_tool:
            result = _outcome(asked[chip.phy_id])
            if isinstance(result, ToolError):
                why = str(result)
            else:
                address = hccn.parse_hccn_tool_ip(result.stdout) if result.returncode == 0 else None
                if address is not None:
                    return replace(chip, device_ip=address, device_ip_source="hccn_tool"), ""
                why = result.failure() if result.returncode != 0 else "`hccn_tool` printed no ipaddr"
        if chip.phy_id in conf:
            return replace(chip, device_ip=conf[chip.phy_id], device_ip_source="/etc/hccn.conf"), ""
        return chip, f"{why}, and /etc/hccn.conf has no address_{chip.phy_id}"

    answers = [lookup(chip) for chip in chips]
    missing = [(chip, why) for chip, why in answers if why]
    if missing and run.settings.device_ips == "strict":
        chip, why = missing[0]
        raise InputError(
            f"{env_name('device_ips')}=strict",
            f"NPU {chip.phy_id} has no device IP ({why}); placeholder IPs are not allowed",
        )
    result = []
    for chip, why in answers:
        if why:
            chip = replace(chip, device_ip=hccn.placeholder_ip(chip.logical_id), device_ip_source="placeholder")
        result.append(chip)
    if missing:
        run.note(
            Level.WARNING,
            "device IPs",
            f"no device IP for NPU(s) {_ids(chip.phy_id for chip, _ in missing)} ({missing[0][1]}); "
            "using placeholder IPs 1.1.1.N as the reference generator does. On one A2 host P and D may not need "
            f"them; set {env_name('device_ips')}=strict to make this an error",
        )
    return result
