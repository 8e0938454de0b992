"""make_plan: host facts + input configs + settings -> an immutable Plan.

No I/O happens here except through the injected PortChecker (tests pass a fake one).
"""

from __future__ import annotations

from ipaddress import AddressValueError, IPv4Address
from pathlib import Path

from supervisor_pd.certs.inputs import TlsInputs
from supervisor_pd.confdir import CONTROLLER, COORDINATOR, ConfInputs, Document
from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import describe_value
from supervisor_pd.formats.server_config import ServerConfigFile
from supervisor_pd.plan import configs
from supervisor_pd.plan.cpus import plan_cpus
from supervisor_pd.plan.layout import Layout, make_layout, numa_of
from supervisor_pd.plan.log_vars import check_log_variables
from supervisor_pd.plan.model import (
    ControllerPlan,
    CoordinatorPlan,
    DevicePlan,
    NoticeOut,
    Plan,
    PlannedFile,
    ServerPlan,
    ServerPorts,
    SupervisorPlan,
)
from supervisor_pd.plan.paths import check_motor_path
from supervisor_pd.plan.ports import ANY_IP, PortAllocator, PortChecker, PortRequest
from supervisor_pd.plan.public_vars import PublicVariables
from supervisor_pd.plan.public_vars import resolve as resolve_server_variables
from supervisor_pd.plan.ranktable import RANKTABLE_FILE, build_ranktable
from supervisor_pd.plan.tls import make_tls
from supervisor_pd.platform.facts import HostFacts, Level, Notice
from supervisor_pd.settings import Settings, env_name

_SERVER_PORT_FIELDS = (
    ("port", "predict_port"),
    ("managementPort", "mgmt_port"),
    ("metricsPort", "metric_port"),
    ("interCommPort", "inter_comm_port"),
)


def make_plan(
    facts: HostFacts,
    inputs: ConfInputs,
    settings: Settings,
    checker: PortChecker,
    tls_inputs: TlsInputs | None = None,
    variables: PublicVariables | None = None,
) -> Plan:
    """The whole deployment: Servers, ports, CPU sets, TLS and the files to write.

    `tls_inputs`: what certs.inputs read about certificates; None = nothing mounted, no Server home known.
    `variables`: MindIE's public variables from the environment; None = none set."""
    variables = variables if variables is not None else PublicVariables()
    configs.check_inputs(inputs)
    check_log_variables(variables)
    layout = make_layout(facts.chips, inputs, settings)
    notices: list[Notice] = [*facts.notices, *layout.notices]
    server_docs = _server_documents(inputs, settings, len(layout.groups), notices)
    server_vars = resolve_server_variables(server_docs, variables)

    coordinator_conf = inputs.coordinator.model.http_config
    controller_conf = inputs.controller.model.http_server
    pod_ip = str(settings.pod_ip) if settings.pod_ip is not None else None
    predict_ip, predict_src = _ip(pod_ip, coordinator_conf.predict_ip, f"{COORDINATOR}: http_config.predict_ip")
    manage_ip, manage_src = _ip(None, coordinator_conf.manage_ip, f"{COORDINATOR}: http_config.manage_ip")
    controller_ip, controller_src = _ip(pod_ip, controller_conf.ip, f"{CONTROLLER}: http_server.ip")
    server_ip = str(settings.server_ip)

    alloc = PortAllocator(
        checker, settings.port_base, facts.ephemeral_ports, strict=settings.port_conflicts == "strict"
    )

    claim = alloc.claim
    api_port = claim(
        PortRequest(
            owner="supervisor",
            field="api_port",
            where=f"--api-port / {env_name('api_port')}",
            ip=str(settings.api_host),
            ip_source=env_name("api_host"),
            listens=True,
            configured=settings.api_port,
            pinned=True,
        )
    )
    coordinator_ports: dict[str, int] = {}
    for field, listens, linked in (
        ("predict_port", True, ()),
        ("manage_port", True, (f"{CONTROLLER}: mindie_ms_coordinator_port",)),
        ("status_port", True, ()),
        ("external_port", True, (f"{CONTROLLER}: mindie_ms_coordinator_external_port",)),
        ("alarm_port", False, (f"{CONTROLLER}: controller_alarm_port",)),
    ):
        ip, ip_source = (predict_ip, predict_src) if field == "predict_port" else (manage_ip, manage_src)
        coordinator_ports[field] = claim(
            PortRequest(
                owner="coordinator",
                field=field,
                where=f"{COORDINATOR}: http_config.{field}",
                ip=ip if listens else ANY_IP,
                ip_source=ip_source,
                listens=listens,
                configured=int(getattr(coordinator_conf, field)),
                pinned=field == "predict_port",
                also_written_to=linked,
            )
        )
    controller_port = claim(
        PortRequest(
            owner="controller",
            field="http_server.port",
            where=f"{CONTROLLER}: http_server.port",
            ip=controller_ip,
            ip_source=controller_src,
            listens=True,
            configured=controller_conf.port,
        )
    )
    node_manager_port = claim(
        PortRequest(
            owner="controller",
            field="node_manager_port",
            where=f"{CONTROLLER}: node_manager_port",
            ip=ANY_IP,
            ip_source="",
            listens=False,
            configured=inputs.controller.model.node_manager_port,
        )
    )

    server_ports: list[ServerPorts] = []
    for index, doc in enumerate(server_docs, start=1):
        section = doc.model.ServerConfig
        values = [
            claim(
                PortRequest(
                    owner=f"server-{index}",
                    field=field,
                    where=f"{doc.name}: ServerConfig.{field}",
                    ip=ANY_IP,  # the Server checks its ports on every interface (reference §1.1)
                    ip_source="",
                    listens=True,
                    configured=None if settings.gen_server_port else getattr(section, field),
                    also_written_to=(f"{RANKTABLE_FILE}: {rank_field}",),
                )
            )
            for field, rank_field in _SERVER_PORT_FIELDS
        ]
        server_ports.append(ServerPorts(port=values[0], management=values[1], metrics=values[2], inter_comm=values[3]))
    notices += [Notice(Level.WARNING, "ports", text) for text in alloc.warnings]

    cpu = plan_cpus(
        settings.cpu_binding,
        settings.control_cpus,
        facts.container_cpus,
        facts.numa_nodes,
        [numa_of(group) for group in layout.groups],
    )
    notices += cpu.notices
    servers = _servers(layout, server_ip, server_ports, cpu.servers)

    limits = inputs.coordinator.raw.get("request_limit", {})
    body_mb = limits.get("body_limit", 1) if isinstance(limits, dict) else 1
    coordinator = CoordinatorPlan(
        body_limit=(body_mb if isinstance(body_mb, int) and not isinstance(body_mb, bool) and body_mb > 0 else 1) << 20,
        predict_ip=predict_ip,
        manage_ip=manage_ip,
        predict_port=coordinator_ports["predict_port"],
        manage_port=coordinator_ports["manage_port"],
        status_port=coordinator_ports["status_port"],
        external_port=coordinator_ports["external_port"],
        alarm_port=coordinator_ports["alarm_port"],
    )
    manager = inputs.controller.model.process_manager
    controller = ControllerPlan(
        ip=controller_ip,
        port=controller_port,
        node_manager_port=node_manager_port,
        recovery_file=manager.file_path if manager.to_file else None,
    )
    if tls_inputs is None:
        tls_inputs = TlsInputs(None, "not looked up", "current", "", settings.tls_mount, None, None, "localhost")
    notices += tls_inputs.notices
    san_ips = (server_ip, predict_ip, manage_ip, controller_ip, *([pod_ip] if pod_ip else []), "127.0.0.1")
    tls = make_tls(settings, inputs, tls_inputs, tuple(dict.fromkeys(san_ips)), notices, variables)
    recorder = configs.Recorder()
    files = [
        PlannedFile(name=name, content=content)
        for name, content in (
            configs.server_config(doc, server, tls, recorder, server_vars)
            for doc, server in zip(server_docs, servers, strict=True)
        )
    ]
    ranktable_path = str((settings.output / RANKTABLE_FILE).absolute())
    output_flag = f"{env_name('output_dir')} (--output)" if settings.output_dir else env_name("state_dir")
    for name in (CONTROLLER, COORDINATOR, RANKTABLE_FILE):
        check_motor_path(str((settings.output / name).absolute()), output_flag)
    if settings.check_inputfiles_permission == "0":
        notices.append(
            Notice(
                Level.WARNING,
                "MINDIE_CHECK_INPUTFILES_PERMISSION",
                "is 0: MindIE does not check the mode and owner of the files it reads (its path checks stay)",
            )
        )
    files.append(
        PlannedFile(
            name=CONTROLLER,
            content=configs.controller_config(
                inputs.controller,
                controller,
                coordinator,
                (layout.p_rate, layout.d_rate),
                ranktable_path,
                tls,
                recorder,
            ),
        )
    )
    files.append(
        PlannedFile(
            name=COORDINATOR, content=configs.coordinator_config(inputs.coordinator, coordinator, tls, recorder)
        )
    )
    files.append(PlannedFile(name=configs.HTTP_CLIENT_CTL, content=configs.http_client_ctl(tls)))
    files.append(
        PlannedFile(
            name=RANKTABLE_FILE,
            content=build_ranktable(facts.device_type, servers, controller, coordinator, facts.super_pod_id),
        )
    )
    return Plan(
        model_name=server_vars.model_name,
        max_seq_len=server_vars.max_seq_len,
        device_type=facts.device_type,
        device_type_source=facts.device_type_source,
        simulated=facts.simulated,
        world_size=layout.world_size,
        p_rate=layout.p_rate,
        d_rate=layout.d_rate,
        rate_source=layout.rate_source,
        servers=servers,
        coordinator=coordinator,
        controller=controller,
        supervisor=SupervisorPlan(api_host=str(settings.api_host), api_port=api_port),
        control_cpus=cpu.control,
        container_cpus=tuple(sorted(facts.container_cpus)),
        ports=tuple(alloc.assignments),
        settings_written=tuple(recorder.written),
        server_settings=server_vars.settings,
        notices=tuple(NoticeOut(level=n.level, subject=n.subject, message=n.message) for n in notices),
        files=tuple(files),
        tls=tls,
        conf_dir=str(inputs.conf_dir),
        conf_source=inputs.source,
    )


def _ip(override: str | None, configured: str, where: str) -> tuple[str, str]:
    if override is not None:
        return override, env_name("pod_ip")
    try:
        address = IPv4Address(configured)
    except AddressValueError:
        raise InputError(where, f"{describe_value(configured)} is not an IPv4 address") from None
    if address.is_unspecified:
        raise InputError(where, "0.0.0.0 is not allowed here: name one address of this host")
    return str(address), where


def _server_documents(
    inputs: ConfInputs, settings: Settings, count: int, notices: list[Notice]
) -> list[Document[ServerConfigFile]]:
    if inputs.template is not None:
        return [inputs.template] * count
    missing = [n for n in range(1, count + 1) if n not in inputs.servers]
    if missing:
        have = ", ".join(inputs.servers[n].name for n in sorted(inputs.servers))
        raise InputError(
            f"{Path(inputs.conf_dir) / f'config{missing[0]}.json'}",
            f"is missing: the plan has {count} Servers, and with {env_name('gen_server_port')}=false each needs "
            f"its own config<n>.json (found: {have})",
        )
    extra = sorted(n for n in inputs.servers if n > count)
    if extra:
        notices.append(
            Notice(Level.INFO, "configs", f"config{extra[0]}.json and above are not used: the plan has {count} Servers")
        )
    return [inputs.servers[n] for n in range(1, count + 1)]


def _servers(
    layout: Layout,
    server_ip: str,
    ports: list[ServerPorts],
    cpus: tuple[tuple[int, ...] | None, ...],
) -> tuple[ServerPlan, ...]:
    servers = []
    rank = 0
    for position, group in enumerate(layout.groups):
        devices = []
        for chip in group:
            devices.append(
                DevicePlan(
                    phy_id=chip.phy_id,
                    logical_id=chip.logical_id,
                    rank_id=rank,
                    npu_id=chip.npu_id,
                    chip_id=chip.chip_id,
                    device_ip=chip.device_ip,
                    device_ip_source=chip.device_ip_source,
                    numa_node=chip.numa_node,
                    super_device_id=chip.super_device_id,
                )
            )
            rank += 1
        servers.append(
            ServerPlan(
                index=position + 1,
                instance_id=position,
                name=f"server-{position + 1}",
                role=layout.roles[position],
                ip=server_ip,
                devices=tuple(devices),
                numa_node=numa_of(group),
                cpus=cpus[position],
                ports=ports[position],
                config_file=f"config{position + 1}.json",
            )
        )
    return tuple(servers)
