"""`supervisor-pd export kubernetes`: the ConfigMap, Deployment and Service for one Atlas 800I per
pod, made from the plan `run` would make in that pod.

The plan gives the facts (device type, NPUs, Servers and roles, the Coordinator's predict port,
supervisor_pd's port), the settings give the deadlines, the config folder gives the ConfigMap;
k8s_pod.py and k8s_env.py turn them into objects and yamltext.py into text, the same bytes for
the same inputs. configs/k8s/*.yaml in the repository are this command's output.
"""

from __future__ import annotations

import shlex
from typing import Any

from supervisor_pd.confdir import Document as ConfDocument
from supervisor_pd.confdir import show_path
from supervisor_pd.errors import InputError
from supervisor_pd.export.k8s_facts import (
    CONFIGMAP,
    POD_GRACE_SECONDS,
    RESOURCE,
    RINGS_CONFIG,
    ConfigFile,
    PodFacts,
)
from supervisor_pd.export.k8s_pod import LABELS, deployment
from supervisor_pd.export.yamltext import Document, Entry, Item, Map, Note, Raw, Text, m, render, seq
from supervisor_pd.pipeline import Prepared
from supervisor_pd.plan.model import Role

REPLICAS = "--replicas"
MAX_REPLICAS = 2**31 - 1  # a Deployment's replicas is an int32
# etcd's limit on one object, which a ConfigMap's data must fit in with its metadata.
CONFIGMAP_BYTES = 1024 * 1024 - 4096
NODE_PORTS = {"predict": 31015, "http": 31016}  # the reference's node port, then the next one


def replicas_value(text: str | None, scale_out: bool) -> int:
    """--replicas: 1 by default, 2 with --scale-out; more than 1 only with --scale-out."""
    if text is None:
        return 2 if scale_out else 1
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_REPLICAS:
        raise InputError(REPLICAS, f"{text!r} is not a whole number from 1 to {MAX_REPLICAS}")
    count = int(text)
    if count > 1 and not scale_out:
        raise InputError(
            REPLICAS,
            f"{count} pods need --scale-out (one pod per node, replaced one at a time); without it the "
            "Deployment is one pod replaced by Recreate",
        )
    return count


def pod_facts(prepared: Prepared, replicas: int, scale_out: bool) -> PodFacts:
    settings, plan, inputs = prepared.settings, prepared.plan, prepared.inputs
    template = inputs.template or inputs.servers[min(inputs.servers)]
    model = template.model.model
    schedule = template.raw.get("BackendConfig", {}).get("ScheduleConfig", {})
    per_token = schedule.get("decodeTimeMsPerReq") if isinstance(schedule, dict) else None
    reply = None
    if isinstance(per_token, int) and not isinstance(per_token, bool):
        reply = (template.model.BackendConfig.ScheduleConfig.maxIterTimes, per_token)
    explicit = settings.model_fields_set
    roles = [server.role for server in plan.servers]
    return PodFacts(
        device_type=plan.device_type,
        npus=len({chip.npu_id for chip in prepared.facts.chips}),
        devices=len(prepared.facts.chips),
        servers=len(plan.servers),
        prefill=roles.count(Role.PREFILL),
        decode=roles.count(Role.DECODE),
        world_size=plan.world_size,
        p_rate=plan.p_rate,
        d_rate=plan.d_rate,
        predict_port=plan.coordinator.predict_port,
        api_port=plan.supervisor.api_port,
        grace_seconds=settings.grace_seconds if "grace_seconds" in explicit else POD_GRACE_SECONDS,
        ready_seconds=settings.ready_seconds,
        doctor_warn=settings.doctor_warn,
        model_name=model.modelName,
        weights_path=model.modelWeightPath,
        reply_seconds=reply,
        configs=_config_files(prepared),
        source=_source(prepared),
        command=_command(prepared, replicas, scale_out),
        replicas=replicas,
        scale_out=scale_out,
    )


def manifests(pod: PodFacts) -> str:
    documents = [Document(_configmap(pod), _configmap_note(pod))]
    if pod.rings_config:
        documents.append(Document(_rings(), _rings_note()))
    documents.append(Document(deployment(pod), _deployment_note(pod)))
    documents.append(Document(_service(pod), _service_note()))
    return render(documents, _header(pod))


# --- inputs -------------------------------------------------------------------------------------


def _config_files(prepared: Prepared) -> tuple[ConfigFile, ...]:
    """The input files as they are, byte for byte: comments and layout a site keeps stay."""
    inputs = prepared.inputs
    documents: list[ConfDocument[Any]] = [*inputs.servers.values(), inputs.controller, inputs.coordinator]
    if inputs.template is not None:
        documents.append(inputs.template)
    files = []
    for document in sorted(documents, key=lambda doc: doc.name):
        path = inputs.conf_dir / document.name
        try:
            text = path.read_bytes().decode()
        except OSError as exc:
            raise InputError(show_path(path), f"cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(show_path(path), "is not UTF-8 text, which a ConfigMap holds") from None
        files.append(ConfigFile(document.name, text))
    size = sum(len(file.name) + len(file.text.encode()) for file in files)
    if size > CONFIGMAP_BYTES:
        raise InputError(
            show_path(inputs.conf_dir),
            f"the configs hold {size} bytes; a ConfigMap holds at most {CONFIGMAP_BYTES} (etcd's 1 MiB per object)",
        )
    return tuple(files)


def _source(prepared: Prepared) -> str:
    settings = prepared.settings
    if settings.simulate is not None and settings.conf_dir is None and settings.config_from_config_file_path is None:
        return "configs/mindie/ (the sample configs)"
    return show_path(prepared.inputs.conf_dir)


def _command(prepared: Prepared, replicas: int, scale_out: bool) -> str:
    """The command line that makes this output again (the variables set show in the Deployment)."""
    settings = prepared.settings
    words = ["supervisor-pd", "export", "kubernetes"]
    if settings.simulate is not None:
        words += ["--simulate", settings.simulate.value]
    if settings.conf_dir is not None:
        words += ["--conf-dir", str(settings.conf_dir)]
    if "api_port" in settings.model_fields_set:
        words += ["--api-port", str(settings.api_port)]
    if scale_out:
        words.append("--scale-out")
    if replicas != replicas_value(None, scale_out):
        words += [REPLICAS, str(replicas)]
    return shlex.join(words)


# --- documents ----------------------------------------------------------------------------------


def _header(pod: PodFacts) -> Note:
    if pod.scale_out:
        what = (
            f"supervisor_pd scaled out: {pod.replicas} pods of one Deployment, one per {pod.machine} node, each "
            "running the whole MindIE prefill/decode stack (every Server, the Coordinator and the Controller) with "
            "supervisor-pd as the container's PID\u00a01, and each one endpoint for the Gateway API Inference "
            "Extension's InferencePool, an autoscaler or the Service. See docs/scale-out.md for the objects that go "
            "with it (configs/k8s/scale-out/) and docs/kubernetes.md for the pod."
        )
    else:
        what = (
            f"supervisor_pd on one {pod.machine}: MindIE prefill/decode disaggregated serving, every Server, the "
            "Coordinator and the Controller in one pod, with supervisor-pd as the container's PID\u00a01. See "
            "docs/kubernetes.md."
        )
    keep = f"{RESOURCE} and sp-block" if pod.a3 else RESOURCE
    return (
        what,
        Raw(""),
        Raw("  kubectl apply -f <this file>      # add -n <namespace> to choose one"),
        Raw(""),
        "Change before applying: the image, the model's host folder (volume model-weights) and the gid in "
        f"supplementalGroups. Keep {keep} equal to the NPU count of the node.",
        Raw(""),
        "Generated from supervisor-pd's plan for the pod, so the NPU count, the ports, the probes and the grace "
        "period come from the code that plans it; to change those, or to carry your own MindIE configs (model "
        "name, worldSize) in the ConfigMap, export again (--conf-dir, --api-port, SUPERVISOR_PD_* variables; "
        "docs/kubernetes.md) rather than edit:",
        Raw(f"  {pod.command}"),
    )


def _configmap_note(pod: PodFacts) -> Note:
    devices = "NPU devices" if pod.a3 else "NPUs"
    return (
        f"The MindIE input configs, as read from {pod.source}. With them the {pod.devices} {devices} make "
        f"{pod.split}, at P:D {pod.p_rate}:{pod.d_rate}. The same ConfigMap the "
        f"reference builds with `kubectl create configmap {CONFIGMAP} --from-file=conf`; supervisor-pd reads it "
        "(CONFIG_FROM_CONFIG_FILE_PATH) and writes its own copies elsewhere.",
    )


def _configmap(pod: PodFacts) -> Map:
    data = Map(tuple(Entry(file.name, Text(file.text)) for file in pod.configs))
    return m(
        ("apiVersion", "v1"),
        ("kind", "ConfigMap"),
        ("metadata", m(("name", CONFIGMAP), ("labels", LABELS))),
        ("data", data),
    )


def _rings_note() -> Note:
    return (
        "The Ascend operator writes this node's hccl.json here (each device's id, IP and super_device_id, the "
        'super-pod id) once the pod is scheduled; until then it holds {"status":"initializing"}. The name '
        "must be rings-config-<Deployment name>. supervisor-pd reads it at start when it is completed, and "
        "otherwise takes the same facts from npu-smi and hccn_tool.",
    )


def _rings() -> Map:
    return m(
        ("apiVersion", "v1"),
        ("kind", "ConfigMap"),
        ("metadata", m(("name", RINGS_CONFIG), ("labels", m(("ring-controller.atlas", "ascend-910b"))))),
        ("data", m(("hccl.json", Text('{\n    "status":"initializing"\n}\n')))),
    )


def _deployment_note(pod: PodFacts) -> Note:
    if not (pod.a3 and pod.scale_out):
        return ()
    return (
        f"No {RINGS_CONFIG} ConfigMap with several pods: the Ascend operator writes one hccl.json for the whole "
        "Deployment, every pod's devices under the same device ids, which supervisor-pd would read as its own "
        "node's. It takes the same facts from npu-smi and hccn_tool instead.",
    )


def _service_note() -> Note:
    return (
        "Not named mindie-ms-*: a Service named mindie-ms-coordinator would give every pod of the namespace that "
        "keeps service links MINDIE_MS_COORDINATOR_PORT=tcp://..., which breaks a MindIE Controller.",
    )


def _service(pod: PodFacts) -> Map:
    predict_note: Note = ("The Coordinator's predict port, for clients that address it directly.",)
    http_note: Note = (
        "supervisor_pd's port: the same inference API plus 503 + Retry-After while draining, request ids and "
        "proxy metrics; also /v1/status and /metrics. New clients should use this one.",
    )
    predict = [Entry("name", "predict"), Entry("port", pod.predict_port), Entry("targetPort", "predict")]
    http = [Entry("name", "http"), Entry("port", pod.api_port), Entry("targetPort", "http")]
    if pod.scale_out:
        kind = Entry(
            "type",
            "ClusterIP",
            (
                "ClusterIP: with several pods, clients come in through a Gateway (docs/scale-out.md) or this "
                "Service inside the cluster; make it NodePort or LoadBalancer to reach it from outside without one.",
            ),
        )
    else:
        kind = Entry("type", "NodePort")
        predict_note = ("The Coordinator's predict port on the reference's node port: existing clients keep working.",)
        predict.append(Entry("nodePort", NODE_PORTS["predict"]))
        http.append(
            Entry(
                "nodePort",
                NODE_PORTS["http"],
                ("Any free port of the cluster's node port range; remove the line to have one assigned.",),
            )
        )
    ports = seq(Item(Map(tuple(predict)), predict_note), Item(Map(tuple(http)), http_note))
    spec = Map((kind, Entry("selector", LABELS), Entry("ports", ports)))
    return m(
        ("apiVersion", "v1"),
        ("kind", "Service"),
        ("metadata", m(("name", "mindie-service"), ("labels", LABELS))),
        ("spec", spec),
    )
