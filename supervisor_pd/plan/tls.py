"""Which link is encrypted, with which files, and the MindIE fields that say so.

Every link of the pod and the switch that governs it (MindIE-Motor config/ms_controller.json and
ms_coordinator.json tls_config; MindIE-LLM config.json ServerConfig); a client and its listener
must agree, or MindIE fails at its first connection, so the plan refuses a mismatch:

  Controller -> Server management     ms_controller request_server      = Server httpsEnabled
  Coordinator -> Server business      ms_coordinator mindie_client      = Server httpsEnabled
  Coordinator -> Server metrics       ms_coordinator mindie_mangment    = Server httpsEnabled
  Controller -> Coordinator manage    ms_controller request_coordinator = ms_coordinator controller_server
  Server P -> Server D (gRPC)         interCommTLSEnabled (absent = true), the same in every Server
  clients -> Coordinator predict      ms_coordinator request_server
  probes -> Coordinator status        ms_coordinator status
  scrapes -> Coordinator metrics      ms_coordinator external (ms_controller external_coordinator, CCAE)
  probes -> Controller                ms_controller http_server

One certificate set serves them all (certs/pki.py says why). Its files live in the Server's home,
which is the only place the Server reads them from; the Controller and Coordinator take absolute
paths to the same files, which satisfy their stricter mode (0400).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from supervisor_pd.certs.inputs import MOUNT_CERT, TlsInputs
from supervisor_pd.confdir import CONTROLLER, COORDINATOR, ConfInputs
from supervisor_pd.errors import InputError
from supervisor_pd.plan.model import Frozen, TlsLink, TlsPlan
from supervisor_pd.plan.paths import check_motor_path
from supervisor_pd.plan.public_vars import TLS_SWITCHES, PublicVariables
from supervisor_pd.platform.facts import Level, Notice
from supervisor_pd.settings import Settings, env_name

FOLDER = "security/supervisor-pd"
CA, CERT, KEY, PASSWORD, CRL = "ca.pem", "cert.pem", "cert.key.pem", "key_pwd.txt", "crl.pem"
# Old (KMC) images only: the keystore, and the plaintext client certificate supervisor_pd presents.
KSF_MASTER, KSF_STANDBY, CLIENT_CERT, CLIENT_KEY = "ksfa", "ksfb", "client.pem", "client.key.pem"
# The KMC keystore's fields in each Motor file's tls items (MindIE-Motor 8fe0937 ControllerConfig.cpp
# and Configure.cpp: snake_case in the Controller, camelCase in the Coordinator).
CONTROLLER_KSF = ("kmc_ksf_master", "kmc_ksf_standby")
COORDINATOR_KSF = ("kmcKsfMaster", "kmcKsfStandby")

CONTROLLER_PAIRS = ("request_coordinator", "request_server", "http_server", "external_coordinator")
COORDINATOR_PAIRS = ("request_server", "controller_server", "status", "external", "mindie_client", "mindie_mangment")
# Pairs of features one container never starts (ClusterD, etcd backup, CCAE, the multi-node alarm):
# with generate or mounted they are switched off, so MindIE does not ask for their files.
CONTROLLER_UNUSED = ("cluster", "etcd_server", "ccae", "alarm")
COORDINATOR_UNUSED = ("etcd_server", "alarm_client")


class _Switches(Frozen):
    https: bool
    inter_comm: bool
    controller: dict[str, bool]
    coordinator: dict[str, bool]
    https_source: str = ""  # the variable that set https, when one did


def _on(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _configured(inputs: ConfInputs, variables: PublicVariables | None = None) -> _Switches:
    docs = [inputs.template] if inputs.template is not None else list(inputs.servers.values())
    https = {doc.name: bool(doc.model.ServerConfig.httpsEnabled) for doc in docs if doc is not None}
    inter = {doc.name: doc.model.ServerConfig.interCommTLSEnabled is not False for doc in docs if doc is not None}
    for values, field in ((https, "httpsEnabled"), (inter, "interCommTLSEnabled")):
        forced = variables.tls_switch(field) if variables is not None else None
        if forced is not None:
            values.update(dict.fromkeys(values, forced))
        if len(set(values.values())) > 1:
            on = sorted(name for name, value in values.items() if value)
            off = sorted(name for name, value in values.items() if not value)
            raise InputError(
                f"{off[0]}: ServerConfig.{field}",
                f"is false while {', '.join(on)} set it true: every Server of the pod must agree (one Controller and "
                "one Coordinator talk to all of them with one setting)",
            )
    controller_tls = inputs.controller.model.tls_config
    coordinator_tls = inputs.coordinator.model.tls_config
    return _Switches(
        https=next(iter(https.values())),
        inter_comm=next(iter(inter.values())),
        controller={pair: _on(controller_tls.get(f"{pair}_tls_enable")) for pair in CONTROLLER_PAIRS},
        coordinator={pair: _on(coordinator_tls.get(f"{pair}_tls_enable")) for pair in COORDINATOR_PAIRS},
        https_source=TLS_SWITCHES["httpsEnabled"]
        if variables and variables.tls_switch("httpsEnabled") is not None
        else "",
    )


def _check_agreement(switches: _Switches, server_file: str) -> None:
    server = (switches.https_source or f"{server_file}: ServerConfig.httpsEnabled", switches.https)
    manage = (f"{COORDINATOR}: tls_config.controller_server_tls_enable", switches.coordinator["controller_server"])
    pairs = (
        (f"{CONTROLLER}: tls_config.request_server_tls_enable", switches.controller["request_server"], server),
        (f"{COORDINATOR}: tls_config.mindie_client_tls_enable", switches.coordinator["mindie_client"], server),
        (f"{COORDINATOR}: tls_config.mindie_mangment_tls_enable", switches.coordinator["mindie_mangment"], server),
        (
            f"{CONTROLLER}: tls_config.request_coordinator_tls_enable",
            switches.controller["request_coordinator"],
            manage,
        ),
    )
    for client, value, (listener, listener_value) in pairs:
        if value != listener_value:
            raise InputError(
                client,
                f"is {_word(value)} but {listener} is {_word(listener_value)}: a client and the listener it calls must "
                "both use TLS or both not, or MindIE fails at its first connection; set them alike, or set "
                f"{env_name('tls')}=generate (every link encrypted) or off",
            )


def _word(value: bool) -> str:
    return "true" if value else "false"


def may_generate(settings: Settings, inputs: ConfInputs, variables: PublicVariables | None = None) -> bool:
    """Whether the plan will likely generate certificates: worth starting on the keys early."""
    if settings.tls in ("off", "mounted"):
        return False
    if settings.tls == "generate":
        return True
    try:
        configured = _configured(inputs, variables)
    except InputError:
        return False
    return (
        configured.https or configured.inter_comm or any({**configured.controller, **configured.coordinator}.values())
    )


def make_tls(
    settings: Settings,
    inputs: ConfInputs,
    tls_inputs: TlsInputs,
    ips: tuple[str, ...],
    notices: list[Notice],
    variables: PublicVariables | None = None,
) -> TlsPlan:
    server_file = (inputs.template or next(iter(inputs.servers.values()))).name
    configured = _configured(inputs, variables)
    mode, source = settings.tls, f"{env_name('tls')}={settings.tls}"
    if mode == "auto":
        on = configured.https or configured.inter_comm or any(configured.controller.values())
        on = on or any(configured.coordinator.values())
        if not on:
            mode, source = "off", f"{env_name('tls')}=auto: every TLS switch of the input configs is off"
        else:
            _check_agreement(configured, server_file)
            mode = "mounted" if tls_inputs.mounted is not None else "generate"
            source = f"{env_name('tls')}=auto: TLS switches on in the input configs; certificates " + (
                f"from {tls_inputs.mount}" if mode == "mounted" else "generated at start"
            )
        switches = configured
    else:
        every = mode != "off"
        switches = _Switches(
            https=every,
            inter_comm=every,
            controller=dict.fromkeys(CONTROLLER_PAIRS, every),
            coordinator=dict.fromkeys(COORDINATOR_PAIRS, every),
        )
    if mode == "off":
        notices.append(
            Notice(
                Level.INFO,
                "tls",
                "every MindIE link is plain HTTP: MindIE's PD guide warns that this carries a high network-security "
                f"risk ({env_name('tls')}=generate turns TLS on with certificates made at start)",
            )
        )
        return TlsPlan(mode="off", mode_source=source, links=_links(switches))
    if tls_inputs.generation == "kmc" and mode == "generate":
        _refuse_kmc(settings, tls_inputs, mode)
    home = tls_inputs.server_home
    if home is None:
        raise InputError(
            "MIES_INSTALL_PATH",
            f"is not set and the Server's home cannot be found ({tls_inputs.home_source}): MindIE's Server reads "
            "its certificates only from inside its home; set MIES_INSTALL_PATH",
        )
    folder = home / FOLDER
    check_motor_path(str(folder), f"the Server's home ({tls_inputs.home_source}: {home})")
    crl = mode == "mounted" and tls_inputs.material().crl_pem is not None
    if mode == "mounted" and switches.inter_comm:
        _check_link_address(tls_inputs, ips[0])
    if mode == "generate" and isinstance(tls_inputs.authority, InputError):
        raise tls_inputs.authority
    return TlsPlan(
        mode=mode,
        mode_source=source,
        links=_links(switches),
        generation=tls_inputs.generation,
        generation_source=tls_inputs.generation_source,
        server_home=str(home),
        home_source=tls_inputs.home_source,
        folder=str(folder),
        crl=crl,
        san_ips=ips,
        san_names=tuple(dict.fromkeys(("localhost", tls_inputs.hostname))),
        lifetime_hours=settings.tls_lifetime_hours if mode == "generate" else None,
        hseceasy_path=str(home / "lib") if tls_inputs.generation == "kmc" else None,
        signer=(
            "site CA " + str(tls_inputs.mount / "ca")
            if mode == "generate" and tls_inputs.authority is not None
            else ("a private CA made at start" if mode == "generate" else f"mounted: {tls_inputs.mount}")
        ),
    )


def _check_link_address(tls_inputs: TlsInputs, server_ip: str) -> None:
    """The P->D link's gRPC client checks that the D Server's certificate names the address it
    dials (the hand-off then fails on every request while the Servers look healthy)."""
    from supervisor_pd.certs.check import load_cert, san_ips  # with cryptography: only for mounted material

    named = san_ips(load_cert(tls_inputs.material().cert_pem))
    if server_ip not in named:
        raise InputError(
            str(tls_inputs.mount / MOUNT_CERT),
            f"does not name {server_ip} (the Servers' address) among its IP addresses "
            f"({', '.join(sorted(named)) or 'none'}): the P->D link's gRPC client checks it, and every hand-off "
            "would fail; reissue it with that IP in subjectAltName",
        )


def _refuse_kmc(settings: Settings, tls_inputs: TlsInputs, mode: str) -> None:
    tool = "config_mindie_server_tls_cert.py"
    raise InputError(
        tls_inputs.generation_source,
        "marks a MindIE image that decrypts key passwords with Huawei's KMC; supervisor_pd cannot make "
        f"KMC-encrypted keys ({env_name('tls')}={settings.tls} resolved to {mode}). Use MindIE's own tool: once, "
        f"`python3 $MIES_INSTALL_PATH/scripts/{tool} <project> import_cert <ca.pem> <ca.key.pem>`; then "
        f"`{tool} <project> gen_cert gen_cert.json --ip=<pod IP>,127.0.0.1`, and mount its output with "
        f"{env_name('tls')}=mounted (layout in docs/tls.md); or set {env_name('tls')}=off",
    )


def _links(s: _Switches) -> tuple[TlsLink, ...]:
    c, m = CONTROLLER, COORDINATOR
    https = "config<n>.json: ServerConfig.httpsEnabled"
    rows = (
        (
            "server_management",
            "supervisor_pd, Controller -> Server management",
            s.https,
            (https, f"{c}: request_server_tls_enable"),
        ),
        ("server_business", "Coordinator -> Server business", s.https, (https, f"{m}: mindie_client_tls_enable")),
        (
            "server_metrics",
            "supervisor_pd, Coordinator -> Server metrics",
            s.https,
            (https, f"{m}: mindie_mangment_tls_enable"),
        ),
        (
            "inter_comm",
            "Server P -> Server D (gRPC)",
            s.inter_comm,
            ("config<n>.json: ServerConfig.interCommTLSEnabled",),
        ),
        (
            "coordinator_manage",
            "Controller -> Coordinator manage",
            s.controller["request_coordinator"],
            (f"{c}: request_coordinator_tls_enable", f"{m}: controller_server_tls_enable"),
        ),
        (
            "coordinator_predict",
            "supervisor_pd, clients -> Coordinator predict",
            s.coordinator["request_server"],
            (f"{m}: request_server_tls_enable",),
        ),
        (
            "coordinator_status",
            "supervisor_pd, probes -> Coordinator status",
            s.coordinator["status"],
            (f"{m}: status_tls_enable",),
        ),
        (
            "coordinator_metrics",
            "supervisor_pd -> Coordinator metrics",
            s.coordinator["external"],
            (f"{m}: external_tls_enable", f"{c}: external_coordinator_tls_enable"),
        ),
        (
            "controller_http",
            "supervisor_pd, probes -> Controller",
            s.controller["http_server"],
            (f"{c}: http_server_tls_enable",),
        ),
    )
    return tuple(TlsLink(key=key, link=name, encrypted=on, switches=switches) for key, name, on, switches in rows)


def server_fields(tls: TlsPlan) -> list[tuple[str, Any, str]]:
    """(field, value, why) for config<n>.json; paths relative to the Server's home."""
    on_https, on_grpc = tls.on("server_management"), tls.on("inter_comm")
    fields: list[tuple[str, Any, str]] = [
        ("ServerConfig.httpsEnabled", on_https, f"TLS per the plan ({tls.mode_source})"),
        ("ServerConfig.interCommTLSEnabled", on_grpc, f"TLS per the plan ({tls.mode_source})"),
    ]
    if tls.folder is None:
        return fields
    rel = f"{FOLDER}/"
    why = "the pod's certificate set, relative to the Server's home (see TLS)"
    if tls.generation == "kmc" and (on_https or on_grpc):
        kmc_why = "old MindIE (KMC): the key's encrypted password and the keystore that decrypts it"
        fields += [("ServerConfig.kmcKsfMaster", rel + KSF_MASTER, kmc_why)]
        fields += [("ServerConfig.kmcKsfStandby", rel + KSF_STANDBY, kmc_why)]
        pads = (["tlsPkPwd", "managementTlsPkPwd", "metricsTlsPkPwd"] if on_https else []) + (
            ["interCommPkPwd"] if on_grpc else []
        )
        fields += [(f"ServerConfig.{field}", rel + PASSWORD, kmc_why) for field in pads]
    crl_path, crl_files = (rel, [CRL]) if tls.crl else ("", [])
    if on_https:
        fields += [
            ("ServerConfig.tlsCaPath", rel, why),
            ("ServerConfig.tlsCaFile", [CA], why),
            ("ServerConfig.tlsCert", rel + CERT, why),
            ("ServerConfig.tlsPk", rel + KEY, why),
            ("ServerConfig.tlsCrlPath", crl_path, why),
            ("ServerConfig.tlsCrlFiles", crl_files, why),
        ]
        for prefix in ("management", "metrics"):
            fields += [
                (f"ServerConfig.{prefix}TlsCaFile", [CA], why),
                (f"ServerConfig.{prefix}TlsCert", rel + CERT, why),
                (f"ServerConfig.{prefix}TlsPk", rel + KEY, why),
                (f"ServerConfig.{prefix}TlsCrlPath", crl_path, why),
                (f"ServerConfig.{prefix}TlsCrlFiles", crl_files, why),
            ]
    if on_grpc:
        fields += [
            ("ServerConfig.interCommTlsCaPath", rel, why),
            ("ServerConfig.interCommTlsCaFiles", [CA], why),
            ("ServerConfig.interCommTlsCert", rel + CERT, why),
            ("ServerConfig.interCommPk", rel + KEY, why),
            ("ServerConfig.interCommTlsCrlPath", crl_path, why),
            ("ServerConfig.interCommTlsCrlFiles", crl_files, why),
        ]
    return fields


def motor_fields(tls: TlsPlan, pairs: dict[str, bool], ksf: tuple[str, str]) -> list[tuple[str, Any, str]]:
    """(field, value, why) for ms_controller.json / ms_coordinator.json."""
    fields: list[tuple[str, Any, str]] = []
    for pair, on in pairs.items():
        fields.append((f"tls_config.{pair}_tls_enable", on, f"TLS per the plan ({tls.mode_source})"))
        if on and tls.folder is not None:
            folder = Path(tls.folder)
            items = {
                "ca_cert": str(folder / CA),
                "tls_cert": str(folder / CERT),
                "tls_key": str(folder / KEY),
                # Current MindIE ignores its content for an unencrypted key, but an empty file crashes
                # it (ConfigParams.cpp reads buffer[-1]).
                "tls_passwd": str(folder / PASSWORD),
                "tls_crl": str(folder / CRL) if tls.crl else "",
            }
            if tls.generation == "kmc":
                items[ksf[0]] = str(folder / KSF_MASTER)
                items[ksf[1]] = str(folder / KSF_STANDBY)
            fields.append((f"tls_config.{pair}_tls_items", items, "the pod's certificate set (see TLS)"))
    return fields


def controller_pairs(tls: TlsPlan) -> dict[str, bool]:
    return {
        "request_coordinator": tls.on("coordinator_manage"),
        "request_server": tls.on("server_management"),
        "http_server": tls.on("controller_http"),
        "external_coordinator": tls.on("coordinator_metrics"),
    }


def coordinator_pairs(tls: TlsPlan) -> dict[str, bool]:
    return {
        "request_server": tls.on("coordinator_predict"),
        "controller_server": tls.on("coordinator_manage"),
        "status": tls.on("coordinator_status"),
        "external": tls.on("coordinator_metrics"),
        "mindie_client": tls.on("server_business"),
        "mindie_mangment": tls.on("server_metrics"),
    }


def unused_off(tls: TlsPlan, pairs: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    """With certificates supervisor_pd provides, the pairs of features one container never starts are off."""
    if tls.mode not in ("generate", "mounted"):
        return []
    why = "a feature one container never starts: off, so MindIE asks for no certificate for it"
    return [(f"tls_config.{pair}_tls_enable", False, why) for pair in pairs]
