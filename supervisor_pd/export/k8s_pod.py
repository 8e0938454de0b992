"""The Deployment of the Kubernetes manifests: the pod that runs `supervisor-pd run`.

Every number comes from PodFacts (k8s_facts.py); the comments are the operator's documentation
of each choice, written next to the value they explain.
"""

from __future__ import annotations

from supervisor_pd.export.k8s_env import environment, mounts, volumes
from supervisor_pd.export.k8s_facts import (
    ACCELERATOR_TYPE,
    CPUS,
    EXIT_SECONDS,
    GID,
    NAME,
    NODE_DEVICES,
    PLANNING_SECONDS,
    PRESTOP_SECONDS,
    RESOURCE,
    STARTUP_PERIOD,
    UID,
    PodFacts,
    seconds_text,
)
from supervisor_pd.export.yamltext import Entry, Flow, Item, Map, Raw, Seq, m, seq
from supervisor_pd.runtime.drain import GROUP_GONE_LIMIT

# supervisor_pd's routes (api/server.py); tests/integration/test_k8s_manifests.py checks them
# against the route table, as this layer may not import the API's.
STARTUP_PATH, READY_PATH, LIVE_PATH, METRICS_PATH = "/startupz", "/readyz", "/livez", "/metrics"
LABELS = m(("app", NAME))
# The Ascend operator's label for the pods whose hccl.json it writes (the reference's value).
RING_CONTROLLER = ("ring-controller.atlas", "ascend-910b")


def deployment(pod: PodFacts) -> Map:
    labels = m(("app", NAME), RING_CONTROLLER) if pod.rings_config else LABELS
    meta = [Entry("name", NAME), Entry("labels", labels)]
    if pod.a3:
        meta.append(Entry("annotations", m(_sp_block(pod))))
    return m(("apiVersion", "apps/v1"), ("kind", "Deployment"), ("metadata", Map(tuple(meta))), ("spec", _spec(pod)))


def _sp_block(pod: PodFacts) -> Entry:
    return Entry(
        "sp-block",
        str(pod.devices),
        (
            "Super-pod block for Volcano = the pod's NPU count. Here as in the reference A3 manifest, and on "
            "the pod template as the Ascend docs place it for Deployments.",
        ),
    )


def _spec(pod: PodFacts) -> Map:
    if pod.scale_out:
        replicas = Entry(
            "replicas",
            pod.replicas,
            (
                f"{pod.replicas} pods, one per node (the anti-affinity below), each serving a whole PD stack on "
                f"{'every NPU of its node' if pod.whole_node else 'the NPUs below'}. An HPA or a KEDA ScaledObject "
                "may own this number instead (docs/scale-out.md).",
            ),
        )
        strategy = Entry(
            "strategy",
            m(("type", "RollingUpdate"), ("rollingUpdate", m(("maxSurge", 0), ("maxUnavailable", 1)))),
            (
                "One pod at a time. maxSurge 0: a new pod gets NPUs only where an old one has released them. "
                "maxUnavailable 1: the others keep serving while each pod drains (below), is replaced and loads "
                "its model.",
            ),
        )
    else:
        replicas = Entry(
            "replicas", pod.replicas, ("One pod holds every NPU of the node and serves the whole PD stack.",)
        )
        strategy = Entry(
            "strategy",
            m(("type", "Recreate")),
            (
                "Recreate: a second pod could not get the NPUs the first one holds, so a rolling update would "
                "wait forever. The old pod drains and exits before the new one is created.",
            ),
        )
    minutes = pod.progress_deadline // 60
    progress = Entry(
        "progressDeadlineSeconds",
        pod.progress_deadline,
        (
            f"{pod.progress_deadline} s ({minutes} min) > the startup probe's {pod.startup_budget} s plus an "
            "image pull: a first start that loads a model is not reported as a failed rollout.",
        ),
    )
    template = m(("metadata", _template_meta(pod)), ("spec", _pod_spec(pod)))
    return m(replicas, strategy, progress, ("selector", m(("matchLabels", LABELS))), ("template", template))


def _template_meta(pod: PodFacts) -> Map:
    labels = [Entry("app", NAME)]
    if pod.rings_config:
        why = (
            "As in the reference: the Ascend components that write hccl.json find the pod, and its "
            "rings-config ConfigMap, by these labels.",
        )
        labels += [Entry(*RING_CONTROLLER, note=why), Entry("deploy-name", NAME)]
    scrape = Entry(
        "prometheus.io/scrape",
        "true",
        (
            "supervisor_pd's /metrics holds its own metrics and every Server's and the Coordinator's, "
            "relabelled: one scrape target per pod.",
        ),
    )
    annotations = [Entry("sp-block", str(pod.devices))] if pod.a3 else []
    annotations += [scrape, Entry("prometheus.io/port", str(pod.api_port)), Entry("prometheus.io/path", METRICS_PATH)]
    return m(("labels", Map(tuple(labels))), ("annotations", Map(tuple(annotations))))


def _pod_spec(pod: PodFacts) -> Map:
    entries: list[Entry] = []
    if pod.a3:
        why = (
            "sp-block and the choice of the NPUs are Volcano's (with the Ascend plugin), as in the reference A3 "
            "manifest.",
        )
        entries.append(Entry("schedulerName", "volcano", why))
    node = m(("accelerator", "huawei-Ascend910"), ("accelerator-type", ACCELERATOR_TYPE[pod.device_type]))
    entries.append(Entry("nodeSelector", node))
    if pod.scale_out:
        entries.append(_anti_affinity())
    links = (
        "Without this, Kubernetes puts <SERVICE>_PORT=tcp://... variables for every Service of the namespace "
        "into the container; one named mindie-ms-coordinator sets MINDIE_MS_COORDINATOR_PORT, which the "
        "Controller reads as its Coordinator port. supervisor-pd already withholds that variable from the "
        "Controller; this keeps all of them out of every process.",
    )
    rest = pod.termination_seconds - PRESTOP_SECONDS - pod.grace_seconds
    grace = (
        f"preStop ({PRESTOP_SECONDS}) + SUPERVISOR_PD_GRACE_SECONDS ({seconds_text(pod.grace_seconds)}) + "
        f"{seconds_text(rest)} = {pod.termination_seconds}. The grace period counts from the moment the pod is "
        "deleted, preStop included; supervisor-pd's drain deadline starts at SIGTERM, after preStop. At that "
        f"deadline it SIGKILLs what is left and waits up to {seconds_text(GROUP_GONE_LIMIT)} s for those process "
        f"groups to be gone; the last {EXIT_SECONDS} s are for it to close its port and exit 0 before the "
        "kubelet's own SIGKILL.",
    )
    entries += [
        Entry("enableServiceLinks", False, links),
        Entry("automountServiceAccountToken", False, ("No process here talks to the Kubernetes API.",)),
        Entry("terminationGracePeriodSeconds", pod.termination_seconds, grace),
        Entry("securityContext", _pod_security()),
        Entry("containers", seq(_container(pod))),
        Entry("volumes", volumes(pod)),
    ]
    return Map(tuple(entries))


def _anti_affinity() -> Entry:
    term = m(("labelSelector", m(("matchLabels", LABELS))), ("topologyKey", "kubernetes.io/hostname"))
    rule = m(("podAntiAffinity", m(("requiredDuringSchedulingIgnoredDuringExecution", seq(term)))))
    why = (
        "One pod per node, as a rule: required pod anti-affinity on the node's name. A topology spread "
        "constraint (maxSkew 1, whenUnsatisfiable DoNotSchedule) was the alternative; it only balances, letting "
        "a second pod onto a node once every eligible node has one, and Volcano, the A3's scheduler, honours "
        "anti-affinity in its predicates, while its topology spread predicate came later (volcano-sh/volcano#2487) "
        "and did not filter in 1.10 (volcano-sh/volcano#3726). A pod beyond the number of NPU nodes stays "
        "Pending, which a cluster autoscaler reads as a node to add.",
    )
    return Entry("affinity", rule, why)


def _pod_security() -> Map:
    group = (
        "Must be the gid of the node's HwHiAiUser group, which owns /dev/davinci* (mode 0660) and the driver "
        f"files: `stat -c %g /dev/davinci0` on the node. {GID} is common, not universal.",
    )
    return m(
        ("runAsNonRoot", True),
        ("runAsUser", UID),
        ("runAsGroup", GID),
        ("supplementalGroups", Flow((GID,)), group),
        ("seccompProfile", m(("type", "RuntimeDefault"))),
    )


def _container(pod: PodFacts) -> Map:
    image = (
        "Built from this repository's Dockerfile on your MindIE image:",
        Raw("  docker build --build-arg BASE_IMAGE=<MindIE image> --target production -t supervisor-pd:mindie ."),
        "then pushed to a registry the nodes can pull from. Its entrypoint runs `supervisor-pd run`, so there is "
        "no command here.",
    )
    message = ("supervisor-pd's last line (for exit 2, the input that is wrong) shows in `kubectl describe pod`.",)
    security = m(("allowPrivilegeEscalation", False), ("capabilities", m(("drop", Flow(("ALL",))))))
    return m(
        ("name", NAME),
        ("image", "supervisor-pd:mindie", image),
        ("imagePullPolicy", "IfNotPresent"),
        ("ports", _ports(pod)),
        ("env", environment(pod)),
        ("resources", _resources(pod)),
        *_probes(pod),
        ("lifecycle", m(("preStop", _prestop(pod)))),
        ("terminationMessagePolicy", "FallbackToLogsOnError", message),
        ("securityContext", security),
        ("volumeMounts", mounts(pod)),
    )


def _ports(pod: PodFacts) -> Seq:
    predict = (
        "The Coordinator's own predict port (http_config.predict_port in ms_coordinator.json), bound on POD_IP, "
        "for clients that address it directly.",
    )
    return seq(
        Item(
            m(("name", "http"), ("containerPort", pod.api_port)),
            ("supervisor_pd: probes, status, /metrics, the inference API (proxied to the Coordinator).",),
        ),
        Item(m(("name", "predict"), ("containerPort", pod.predict_port)), predict),
    )


def _resources(pod: PodFacts) -> Map:
    if not pod.whole_node:
        what = f"{pod.devices} of the node's {NODE_DEVICES[pod.device_type]} NPU devices, the ones the plan uses"
    elif pod.a3:
        what = f"All {pod.devices} NPU devices of the node (two dies per NPU)"
    else:
        what = f"All {pod.devices} NPUs of the node"
    npus = (f"{what}: {pod.split} with config.json below. requests must equal limits for extended resources.",)
    placeholder = (
        f"Site-specific: CPUs and memory for {pod.servers} Servers (model loading goes through host memory), the "
        "Coordinator and the Controller. supervisor-pd binds each Server to CPUs of its NPUs' NUMA node within "
        "the container's CPU set; for whole dedicated cores, set limits equal to requests (Guaranteed QoS) with "
        "the kubelet's static CPU manager.",
    )
    requests = m((RESOURCE, pod.devices), ("cpu", str(CPUS), placeholder), ("memory", pod.memory))
    return m(("requests", requests, npus), ("limits", m((RESOURCE, pod.devices))))


def _probe(path: str, period: int, timeout: int, failures: int) -> Map:
    return m(
        ("httpGet", m(("path", path), ("port", "http"))),
        ("periodSeconds", period),
        ("timeoutSeconds", timeout),
        ("failureThreshold", failures),
    )


def _probes(pod: PodFacts) -> tuple[Entry, ...]:
    startup = (
        f"Up to {pod.startup_failures} x {STARTUP_PERIOD} s = {pod.startup_budget} s for the first model load: "
        f"SUPERVISOR_PD_READY_SECONDS ({seconds_text(pod.ready_seconds)}) plus {PLANNING_SECONDS} s for "
        "discovery and planning, so supervisor-pd's own deadline, which says what was not ready, fires first. "
        "Liveness and readiness wait for it.",
    )
    members = "the Service and the InferencePool" if pod.scale_out else "the Service"
    readiness = (
        "/readyz fails at once when the Coordinator is not ready, no prefill or no decode Server answers, or a "
        f"drain has started. Two misses 5 s apart (10 s) take the pod out of {members}; one slow answer does not.",
    )
    liveness = (
        "/livez fails only when supervisor-pd's own loop is stuck (no pass in 10 s) or it has given up (restart "
        "budget spent, ready deadline missed) and is stopping; MindIE processes are restarted by supervisor-pd, "
        "not by this probe. Answered from memory, so 3 s is generous; 3 misses 10 s apart (30 s) restart the "
        "container.",
    )
    return (
        Entry("startupProbe", _probe(STARTUP_PATH, STARTUP_PERIOD, 3, pod.startup_failures), startup),
        Entry("readinessProbe", _probe(READY_PATH, 5, 3, 2), readiness),
        Entry("livenessProbe", _probe(LIVE_PATH, 10, 3, 3), liveness),
    )


def _prestop(pod: PodFacts) -> Map:
    if pod.scale_out:
        away = (
            "the endpoint removal to reach every proxy and the InferencePool's endpoint picker (which drops a "
            "deleted pod at once: gateway-api-inference-extension v1.5.0 pkg/epp/util/pod/pod.go:23-26, read by "
            "pkg/epp/controller/pod_reconciler.go:92)"
        )
    else:
        away = "the endpoint removal to reach every proxy"
    why = (
        f"{PRESTOP_SECONDS} s for {away} before SIGTERM starts the drain (supervisor-pd serves normally meanwhile, "
        "so a request sent just before the removal is still answered). A plain sleep rather than "
        "/opt/supervisor-pd/boot/prestop.sh: the drain then runs on SIGTERM under the deadline counted above, and "
        "no hook is still running when supervisor-pd, PID\u00a01, exits at the end of the drain.",
    )
    return m(("exec", m(("command", Flow(("sleep", str(PRESTOP_SECONDS))))), why))
