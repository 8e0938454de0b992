"""The container's variables, mounts and volumes in the Kubernetes manifests."""

from __future__ import annotations

from pathlib import PurePosixPath

from supervisor_pd.export.k8s_facts import (
    CONFIG_MOUNT,
    CONFIGMAP,
    PLANNING_SECONDS,
    RESOURCE,
    RINGS_CONFIG,
    SHM,
    UID,
    PodFacts,
    seconds_text,
)
from supervisor_pd.export.yamltext import Entry, Item, Map, Note, Raw, Seq, m

# The reference pod's variables (MindIE-Motor deployment/mindie_service_single_container.yaml).
MINDIE_PATHS = (
    ("MINDIE_USER_HOME_PATH", "/usr/local"),
    ("CANN_INSTALL_PATH", "/usr/local/Ascend"),
    ("MIES_INSTALL_PATH", "/usr/local/lib/python3.11/site-packages/mindie_motor"),
    ("MINDIE_LLM_HOME_PATH", "/usr/local/lib/python3.11/site-packages/mindie_llm"),
)
# SUPERVISOR_PD_HCCL_JSON's default folder, where the Ascend operator's ConfigMap is mounted.
HCCL_FOLDER = "/user/serverid/devindex/config"
TOKEN_SECRET = "mindie-server-api-token"  # noqa: S105  (the Secret object's name)
VISIBLE_FROM = f"metadata.annotations['{RESOURCE}']"


def _var(name: str, value: str, note: Note = ()) -> Item:
    return Item(m(("name", name), ("value", value)), note)


def _field(name: str, path: str, note: Note = ()) -> Item:
    return Item(m(("name", name), ("valueFrom", m(("fieldRef", m(("fieldPath", path)))))), note)


def environment(pod: PodFacts) -> Seq:
    paths = (
        "The reference pod's variables, with the same values, so its users can switch. Match the paths to your "
        "MindIE image (older images: /usr/local/Ascend/mindie/latest/mindie-service and .../mindie-llm).",
    )
    items = [_var(name, value, paths if index == 0 else ()) for index, (name, value) in enumerate(MINDIE_PATHS)]
    items += [
        _var("CONFIG_FROM_CONFIG_FILE_PATH", CONFIG_MOUNT, (f"The ConfigMap {CONFIGMAP}, mounted below; only read.",)),
        _var(
            "MINDIE_MS_P_RATE",
            str(pod.p_rate),
            ("Prefill:decode Servers; they override default_p_rate/default_d_rate of ms_controller.json.",),
        ),
        _var("MINDIE_MS_D_RATE", str(pod.d_rate)),
        _var(
            "MINDIE_MS_GEN_SERVER_PORT",
            "true",
            ("true: every Server's config is generated from config.json with its own ports.",),
        ),
        _var("MINDIE_LOG_TO_FILE", "1"),
        _var("MINDIE_LOG_TO_STDOUT", "1"),
        _var("MINDIE_LOG_LEVEL", "INFO"),
        _field("POD_IP", "status.podIP", ("The Coordinator's predict port listens on this address.",)),
    ]
    own = ("supervisor_pd's own settings (docs/settings.md).",)
    if pod.a3:
        items.append(_visible_devices())
        own_note: Note = (*own, "The HTTP port the probes, the Service and the scrape annotations use.")
    else:
        own_note = (
            *_visible_devices_example(),
            *own,
            "The HTTP port the probes, the Service and the scrape annotations use.",
        )
    items += [_var("SUPERVISOR_PD_API_PORT", str(pod.api_port), own_note), *_deadlines(pod), *_doctor_and_token()]
    return Seq(tuple(items))


def _visible_devices() -> Item:
    why = (
        "Volcano writes the NPUs it chose into this annotation (Ascend910-0,...); the Ascend Docker Runtime "
        "mounts those devices and supervisor-pd uses exactly those. This is how the Ascend docs set it for "
        "whole-NPU scheduling with Volcano; with another scheduler, delete it (the device plugin then sets it, "
        "and an empty value here would override the plugin's).",
    )
    return _field("ASCEND_VISIBLE_DEVICES", VISIBLE_FROM, why)


def _visible_devices_example() -> Note:
    return (
        "With the Volcano scheduler (whole-NPU scheduling), it writes the chosen NPUs into this annotation and "
        "the Ascend Docker Runtime mounts those; the Ascend docs then set ASCEND_VISIBLE_DEVICES from it. With "
        "the default scheduler, as here, the device plugin sets it itself: leave it out, an empty value would "
        "override the plugin's.",
        Raw("- name: ASCEND_VISIBLE_DEVICES"),
        Raw("  valueFrom:"),
        Raw("    fieldRef:"),
        Raw(f"      fieldPath: {VISIBLE_FROM}"),
        Raw(""),
    )


def _deadlines(pod: PodFacts) -> list[Item]:
    half = pod.grace_seconds / 2
    drain = [
        f"Drain deadline after SIGTERM: half ({seconds_text(half)} s) for requests in flight, the other half for "
        "/stopService and the processes' own stop paths (a Server's takes up to 20 s)."
    ]
    if pod.reply_seconds is not None:
        iterations, per_token_ms = pod.reply_seconds
        reply = iterations * per_token_ms / 1000
        fits = "covers" if half >= reply else "does not cover"
        drain.append(
            f"{seconds_text(half)} s {fits} a whole reply of config.json: maxIterTimes {iterations} x "
            f"{per_token_ms} ms per token ({seconds_text(reply)} s)."
        )
    drain.append("terminationGracePeriodSeconds follows it: export again after changing it.")
    ready = (
        f"The whole service must be ready (roles assigned, models loaded) within {_minutes(pod.ready_seconds)}, "
        f"or supervisor-pd stops everything and exits 4. The startup probe allows {PLANNING_SECONDS} s more.",
    )
    return [
        _var("SUPERVISOR_PD_GRACE_SECONDS", seconds_text(pod.grace_seconds), (" ".join(drain),)),
        _var("SUPERVISOR_PD_READY_SECONDS", seconds_text(pod.ready_seconds), ready),
    ]


def _doctor_and_token() -> list[Item]:
    doctor = (
        "Before anything starts, supervisor-pd runs its preflight checks (the same as `supervisor-pd doctor`: "
        "chips, links, model weights owner and mode, /dev/shm, ...); a failed one stops it with exit 2 and the "
        "check's line in `kubectl describe pod`. A check this site knows better about can be made a warning "
        "(docs/doctor.md):",
    )
    token = (
        "Bearer token for control requests (restart, drain) on supervisor_pd's port; without it they are refused "
        "there (403). Optional: create it with",
        Raw(f'  kubectl create secret generic {TOKEN_SECRET} --from-literal=token="$(openssl rand -hex 32)"'),
        "supervisor-pd never passes it to a MindIE process. (SUPERVISOR_PD_API_TOKEN_FILE would stop "
        "supervisor-pd with exit 2 when the optional Secret is absent.)",
    )
    secret = m(("name", TOKEN_SECRET), ("key", "token"), ("optional", True))
    return [
        _var("SUPERVISOR_PD_DOCTOR_WARN", "", doctor),
        Item(m(("name", "SUPERVISOR_PD_API_TOKEN"), ("valueFrom", m(("secretKeyRef", secret)))), token),
    ]


def _minutes(seconds: float) -> str:
    return f"{seconds_text(seconds / 60)} min" if seconds % 60 == 0 else f"{seconds_text(seconds)} s"


# --- mounts and volumes -------------------------------------------------------------------------

# The driver's files and tools discovery reads, from the node: (volume, path, hostPath type).
_HOST = (
    ("ascend-driver", "/usr/local/Ascend/driver", "Directory"),
    ("dcmi", "/usr/local/dcmi", "Directory"),
    ("npu-smi", "/usr/local/bin/npu-smi", "File"),
    ("hccn-conf", "/etc/hccn.conf", "File"),
    ("ascend-install-info", "/etc/ascend_install.info", "File"),
)


def mounts(pod: PodFacts) -> Seq:
    items = [
        Item(m(("name", "config-files"), ("mountPath", CONFIG_MOUNT), ("readOnly", True))),
        Item(m(("name", "model-weights"), ("mountPath", pod.weights_path), ("readOnly", True))),
        Item(m(("name", "dshm"), ("mountPath", "/dev/shm"))),  # noqa: S108  (the pod's own shared memory)
    ]
    items += [Item(m(("name", name), ("mountPath", path), ("readOnly", True))) for name, path, _ in _HOST]
    if pod.rings_config:
        items.append(
            Item(
                m(("name", "hccl-config"), ("mountPath", HCCL_FOLDER), ("readOnly", True)),
                ("hccl.json from the Ascend operator, where SUPERVISOR_PD_HCCL_JSON looks by default.",),
            )
        )
    return Seq(tuple(items))


def volumes(pod: PodFacts) -> Seq:
    weights = (
        "The model's folder on the node; config.json's modelWeightPath is the mount path above. Placeholder: "
        f"change it. Readable by uid {UID} / the gid above; MindIE checks the owner and permissions of the "
        "weights (750 or stricter).",
    )
    host = (
        "The driver's libraries and tools, and what discovery reads (npu-smi, hccn_tool under driver/tools, "
        "/etc/hccn.conf for the device IPs). The Ascend Docker Runtime mounts most of these by itself; mounting "
        "them here too does no harm and makes the pod work without it. The types make a missing path fail the "
        "pod instead of creating it on the node; drop hccn.conf if the node has none (device IPs then come from "
        "hccn_tool).",
    )
    items = [
        Item(m(("name", "config-files"), ("configMap", m(("name", CONFIGMAP))))),
        Item(m(("name", "model-weights"), ("hostPath", _host_path(_weights_folder(pod), "Directory"))), weights),
        Item(
            m(("name", "dshm"), ("emptyDir", m(("medium", "Memory"), ("sizeLimit", SHM)))),
            (
                f"The Servers' shared memory, {SHM.replace('Gi', ' Gi')} as in the reference pod; it counts as the "
                "pod's memory.",
            ),
        ),
    ]
    for index, (name, path, kind) in enumerate(_HOST):
        items.append(Item(m(("name", name), ("hostPath", _host_path(path, kind))), host if index == 0 else ()))
    if pod.rings_config:
        items.append(Item(m(("name", "hccl-config"), ("configMap", m(("name", RINGS_CONFIG))))))
    return Seq(tuple(items))


def _host_path(path: str, kind: str) -> Map:
    return Map((Entry("path", path), Entry("type", kind)))


def _weights_folder(pod: PodFacts) -> str:
    """A placeholder named after the model, where the name is a plain folder name."""
    name = pod.model_name
    plain = name and all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in name) and name not in {".", ".."}
    return str(PurePosixPath("/data/models") / (name if plain else "model"))
