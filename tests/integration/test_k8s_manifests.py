"""configs/k8s: the Kubernetes manifests agree with the schema, with supervisor_pd and with the sample configs.

Offline: `kubernetes-validate --strict` checks every object of a built-in kind in configs/k8s
(recursively) against the Kubernetes 1.32 schema and the newest one it has; custom resources are
tests/integration/test_scale_out_manifests.py's. The rest is read from the code the manifests
depend on (the API's route table, the settings' defaults, the drain's timings, the simulated
hosts, configs/mindie). The pod manifests themselves are `supervisor-pd export kubernetes` output
(tests/integration/test_k8s_export.py keeps them equal to it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from supervisor_pd.api.server import PROBES, ApiServer
from supervisor_pd.confdir import load_inputs
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.platform.discover import discover
from supervisor_pd.platform.visibility import parse_id_list
from supervisor_pd.runtime.drain import GROUP_GONE_LIMIT
from supervisor_pd.settings import Settings, load_settings
from supervisor_pd.simulator.profiles import PROFILES
from tests.factories import FakeChecker
from tests.helpers import REPO, SAMPLE_CONF, sim_env, sim_host

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")

from tests.k8sfiles import is_builtin, manifest_files, shown  # noqa: E402  (needs PyYAML)
from tests.k8sfiles import objects as file_objects  # noqa: E402

K8S = REPO / "configs" / "k8s"
# Pod manifest -> (its file, the simulated profile of the same machine).
MANIFESTS = {
    "800i-a2": (K8S / "800i-a2.yaml", "800i-a2"),
    "800i-a3": (K8S / "800i-a3.yaml", "800i-a3"),
    "scale-out": (K8S / "scale-out" / "deployment.yaml", "800i-a2"),
}
PLATFORMS = {name: profile for name, (_, profile) in MANIFESTS.items()}
SINGLE = [name for name in MANIFESTS if name != "scale-out"]
# The reference pod's variables (mindie_service_single_container.yaml), kept for its users.
REFERENCE_ENV = {
    "MINDIE_USER_HOME_PATH": "/usr/local",
    "CANN_INSTALL_PATH": "/usr/local/Ascend",
    "MIES_INSTALL_PATH": "/usr/local/lib/python3.11/site-packages/mindie_motor",
    "MINDIE_LLM_HOME_PATH": "/usr/local/lib/python3.11/site-packages/mindie_llm",
    "CONFIG_FROM_CONFIG_FILE_PATH": "/mnt/config-files",
    "MINDIE_MS_P_RATE": "1",
    "MINDIE_MS_D_RATE": "1",
    "MINDIE_MS_GEN_SERVER_PORT": "true",
    "MINDIE_LOG_TO_FILE": "1",
    "MINDIE_LOG_TO_STDOUT": "1",
    "MINDIE_LOG_LEVEL": "INFO",
}
NODE_TYPES = {"800i-a2": "module-910b-8", "800i-a3": "module-a3-16", "scale-out": "module-910b-8"}
RESOURCE = "huawei.com/Ascend910"


def manifest_path(platform: str) -> Path:
    return MANIFESTS[platform][0]


def load(platform: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The file's objects by (kind, name)."""
    with manifest_path(platform).open() as handle:
        documents = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    assert len(objects) == len(documents), "two objects share a kind and name"
    return objects


def deployment(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (found,) = [doc for (kind, _), doc in objects.items() if kind == "Deployment"]
    return found


def service(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (found,) = [doc for (kind, _), doc in objects.items() if kind == "Service"]
    return found


def container(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (found,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return found


def env_of(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(objects)["env"]}


def literal_env(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    return {name: item["value"] for name, item in env_of(objects).items() if "value" in item}


def setting(objects: dict[tuple[str, str], dict[str, Any]], field: str, variable: str) -> float:
    """A supervisor_pd setting as the pod gets it: from the manifest, else the default."""
    value = literal_env(objects).get(variable)
    return float(value) if value is not None else float(Settings.model_fields[field].default)


def container_port(objects: dict[tuple[str, str], dict[str, Any]], name: str) -> int:
    (port,) = [p["containerPort"] for p in container(objects)["ports"] if p["name"] == name]
    return port


def probe_port(objects: dict[tuple[str, str], dict[str, Any]], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    return container_port(objects, port) if isinstance(port, str) else port


def volume_mount(objects: dict[tuple[str, str], dict[str, Any]], volume: str) -> str:
    (path,) = [m["mountPath"] for m in container(objects)["volumeMounts"] if m["name"] == volume]
    return path


def volume(objects: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [v for v in deployment(objects)["spec"]["template"]["spec"]["volumes"] if v["name"] == name]
    return found


def npu_count(platform: str) -> int:
    return len(PROFILES[PLATFORMS[platform]].chips)


def coordinator_predict_port() -> int:
    coordinator = json.loads((SAMPLE_CONF / "ms_coordinator.json").read_text())
    return int(coordinator["http_config"]["predict_port"])


def served_get_paths() -> set[str]:
    """The GET routes ApiServer registers (the proxy's routes left out), from the real route table."""

    @web.middleware
    async def passing(request: Any, handler: Any) -> Any:
        return await handler(request)

    class Handlers:
        settings = SimpleNamespace(proxy_max_body_bytes=1)
        proxy = SimpleNamespace(add_routes=lambda app: None)
        hosts = connections = SimpleNamespace(middleware=passing)
        refusals = SimpleNamespace(note=lambda *_: None)

        def __getattr__(self, name: str) -> Any:
            async def handler(request: Any) -> None:
                return None

            return handler

    app = ApiServer.app(Handlers())  # type: ignore[arg-type]
    return {route.resource.canonical for route in app.router.routes() if route.method == "GET"}


# --- the schema ---------------------------------------------------------------------------------


BUILTIN = [(path, doc) for path in manifest_files() for doc in file_objects(path) if is_builtin(doc)]
# The newest Kubernetes the installed kubernetes-validate has schemas for, besides 1.32.
VERSIONS = ("1.32", max(kubernetes_validate.utils.all_versions(), key=lambda v: tuple(map(int, v.split(".")))))


def test_every_file_holds_kubernetes_objects_and_the_pod_manifests_are_among_them() -> None:
    files = manifest_files()
    assert {path for path, _ in MANIFESTS.values()} <= set(files)
    for path in files:
        for doc in file_objects(path):
            assert isinstance(doc, dict) and {"apiVersion", "kind", "metadata"} <= doc.keys(), (
                f"{shown(path)}: every document must be a Kubernetes object (`kubectl apply -R -f configs/k8s` "
                "applies them); keep other YAML outside configs/k8s or inside a ConfigMap"
            )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "item", BUILTIN, ids=lambda item: f"{shown(item[0])}:{item[1]['kind']}/{item[1]['metadata']['name']}"
)
def test_kubernetes_validate_strict_accepts_every_built_in_object(
    item: tuple[Path, dict[str, Any]], version: str
) -> None:
    """What `kubernetes-validate --strict -k VERSION FILE` checks, one object at a time, so that the
    custom resources of a file are left to their CRD schemas; a built-in kind with no schema (a
    misspelt kind or version) fails here, where the command would only warn."""
    path, doc = item
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{shown(path)}: {doc['apiVersion']} {doc['kind']} is not a kind of Kubernetes {version}")
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        pytest.fail(f"{shown(path)}: {doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")


def test_the_pod_manifests_pass_the_kubernetes_validate_command() -> None:
    """The command line too, as a user runs it, on the files that hold only built-in kinds."""
    tool = Path(sys.executable).parent / "kubernetes-validate"
    if not tool.is_file():
        pytest.skip(f"kubernetes-validate is not installed next to {sys.executable}: pip install -e '.[test]'")
    files = [str(path) for path, _ in MANIFESTS.values()]
    assert all(is_builtin(doc) for path in files for doc in file_objects(Path(path)))
    done = subprocess.run(
        [str(tool), "--strict", "-k", VERSIONS[0], *files], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN" not in done.stdout, done.stdout
    assert done.stdout.count(" passed for resource ") == sum(len(file_objects(Path(path))) for path in files)


# --- per platform -------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_configmap_holds_exactly_the_sample_configs(platform: str) -> None:
    objects = load(platform)
    data = objects[("ConfigMap", "config-file-path")]["data"]
    samples = {path.name: json.loads(path.read_text()) for path in sorted(SAMPLE_CONF.glob("*.json"))}
    assert sorted(data) == sorted(samples), "the ConfigMap and configs/mindie hold different files"
    for name, expected in samples.items():
        assert json.loads(data[name]) == expected, (
            f"{manifest_path(platform).name}: {name} in ConfigMap config-file-path differs from "
            f"configs/mindie/{name}; copy the file's text into the ConfigMap"
        )
    mount = volume_mount(objects, "config-files")
    assert volume(objects, "config-files")["configMap"]["name"] == "config-file-path"
    assert literal_env(objects)["CONFIG_FROM_CONFIG_FILE_PATH"] == mount


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_reference_pods_environment_is_kept(platform: str) -> None:
    objects = load(platform)
    env = env_of(objects)
    assert {name: literal_env(objects).get(name) for name in REFERENCE_ENV} == REFERENCE_ENV
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert "command" not in container(objects), "the image's entrypoint runs supervisor-pd"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_manifests_settings_are_accepted(platform: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SUPERVISOR_PD_", "MINDIE_", "MIES_", "ASCEND_")) or name == "POD_IP":
            monkeypatch.delenv(name)
    for name, value in literal_env(load(platform)).items():
        monkeypatch.setenv(name, value)
    load_settings()  # a value supervisor-pd refuses raises InputError here


@pytest.mark.parametrize("platform", PLATFORMS)
def test_probes_use_the_paths_and_port_supervisor_pd_serves(platform: str) -> None:
    objects = load(platform)
    spec = container(objects)
    served = served_get_paths()
    assert {f"/{name}" for name in PROBES} <= served
    expected = {"startupProbe": "/startupz", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
    api_port = int(setting(objects, "api_port", "SUPERVISOR_PD_API_PORT"))
    assert api_port == Settings.model_fields["api_port"].default
    for probe, path in expected.items():
        assert spec[probe]["httpGet"]["path"] == path
        assert probe_port(objects, spec[probe]) == api_port
    annotations = deployment(objects)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == api_port
    assert annotations["prometheus.io/path"] in served


@pytest.mark.parametrize("platform", PLATFORMS)
def test_startup_allows_the_whole_ready_deadline(platform: str) -> None:
    objects = load(platform)
    startup = container(objects)["startupProbe"]
    budget = startup.get("initialDelaySeconds", 0) + startup["periodSeconds"] * startup["failureThreshold"]
    ready = setting(objects, "ready_seconds", "SUPERVISOR_PD_READY_SECONDS")
    # supervisor-pd's own deadline (exit 4, naming what was not ready) must come first.
    assert budget > ready
    assert deployment(objects)["spec"]["progressDeadlineSeconds"] > budget


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_grace_period_covers_prestop_drain_and_the_kill(platform: str) -> None:
    objects = load(platform)
    pod = deployment(objects)["spec"]["template"]["spec"]
    command = container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    prestop = float(command[1])
    assert "SUPERVISOR_PD_GRACE_SECONDS" in literal_env(objects), "set the drain deadline explicitly"
    grace = setting(objects, "grace_seconds", "SUPERVISOR_PD_GRACE_SECONDS")
    # The kubelet counts preStop into the grace period; the drain deadline starts at SIGTERM, and
    # after its SIGKILL the supervisor waits up to GROUP_GONE_LIMIT for the groups to be gone.
    assert pod["terminationGracePeriodSeconds"] >= prestop + grace + GROUP_GONE_LIMIT + 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_ports_match_the_coordinator_and_supervisor_pd(platform: str) -> None:
    objects = load(platform)
    predict = coordinator_predict_port()
    api_port = Settings.model_fields["api_port"].default
    assert container_port(objects, "predict") == predict
    assert container_port(objects, "http") == api_port
    svc = service(objects)
    ports = {port["port"]: port for port in svc["spec"]["ports"]}
    assert sorted(ports) == sorted([predict, api_port])
    for number, port in ports.items():
        assert container_port(objects, port["targetPort"]) == number
    if platform == "scale-out":
        assert svc["spec"]["type"] == "ClusterIP", "several pods are reached through a Gateway or in the cluster"
        assert all("nodePort" not in port for port in ports.values())
    else:
        assert ports[predict]["nodePort"] == 31015, "the reference's node port, so existing clients keep working"
    assert svc["spec"]["selector"] == deployment(objects)["spec"]["selector"]["matchLabels"]
    # A Service named mindie-ms-* injects MINDIE_MS_*_PORT into pods that keep service links.
    assert not svc["metadata"]["name"].startswith("mindie-ms-")
    assert deployment(objects)["spec"]["template"]["spec"]["enableServiceLinks"] is False


@pytest.mark.parametrize("platform", PLATFORMS)
def test_one_pod_holds_every_npu_of_the_node(platform: str) -> None:
    objects = load(platform)
    spec = deployment(objects)["spec"]
    if platform in SINGLE:
        assert spec["replicas"] == 1
        assert spec["strategy"] == {"type": "Recreate"}
    resources = container(objects)["resources"]
    assert resources["requests"][RESOURCE] == resources["limits"][RESOURCE] == npu_count(platform)
    assert spec["template"]["spec"]["nodeSelector"]["accelerator-type"] == NODE_TYPES[platform]
    shm = volume(objects, "dshm")
    assert volume_mount(objects, "dshm") == "/dev/shm"
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_model_is_mounted_where_config_json_looks(platform: str) -> None:
    objects = load(platform)
    config = json.loads(objects[("ConfigMap", "config-file-path")]["data"]["config.json"])
    weights = config["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["modelWeightPath"]
    assert volume_mount(objects, "model-weights") == weights
    assert volume(objects, "model-weights")["hostPath"]["type"] == "Directory"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_pod_runs_unprivileged(platform: str) -> None:
    objects = load(platform)
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["runAsGroup"] == 1000
    assert context["supplementalGroups"] == [1000]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    own = container(objects)["securityContext"]
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"] == {"drop": ["ALL"]}
    host_paths = {v["hostPath"]["path"]: v for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    for entry in host_paths.values():
        assert mounts[entry["name"]].get("readOnly") is True, f"{entry['name']} is a host path: mount it read-only"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_absent_token_secret_does_not_stop_the_pod(platform: str) -> None:
    env = env_of(load(platform))
    # A token file that does not exist stops supervisor-pd with exit 2, so the file may only come
    # from a Secret that must exist; the optional Secret feeds the variable instead.
    assert "SUPERVISOR_PD_API_TOKEN_FILE" not in env
    token = env["SUPERVISOR_PD_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["optional"] is True


def test_a3_gets_the_ascend_operators_hccl_json_and_super_pod_block() -> None:
    objects = load("800i-a3")
    deploy = deployment(objects)
    name = deploy["metadata"]["name"]
    rings = objects[("ConfigMap", f"rings-config-{name}")]
    assert json.loads(rings["data"]["hccl.json"]) == {"status": "initializing"}
    assert volume(objects, "hccl-config")["configMap"]["name"] == f"rings-config-{name}"
    hccl_json = Path(str(Settings.model_fields["hccl_json"].default))
    assert Path(volume_mount(objects, "hccl-config")) == hccl_json.parent
    assert hccl_json.name in rings["data"]
    template = deploy["spec"]["template"]["metadata"]
    assert template["labels"]["deploy-name"] == name
    assert template["labels"]["ring-controller.atlas"] == rings["metadata"]["labels"]["ring-controller.atlas"]
    count = str(npu_count("800i-a3"))
    assert deploy["metadata"]["annotations"]["sp-block"] == template["annotations"]["sp-block"] == count
    visible = env_of(objects)["ASCEND_VISIBLE_DEVICES"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert visible == f"metadata.annotations['{RESOURCE}']"


def test_a2_leaves_device_choice_to_the_device_plugin() -> None:
    objects = load("800i-a2")
    assert "ASCEND_VISIBLE_DEVICES" not in env_of(objects)
    assert ("ConfigMap", "rings-config-mindie-server") not in objects


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_pod_plans_on_its_simulated_host(platform: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """supervisor-pd's plan from the manifest's configs and variables, on the simulated machine."""
    objects = load(platform)
    host = sim_host(tmp_path, PLATFORMS[platform])
    conf = tmp_path / "config-files"
    conf.mkdir()
    for name, text in objects[("ConfigMap", "config-file-path")]["data"].items():
        (conf / name).write_text(text)
    rings = [doc for (kind, name), doc in objects.items() if kind == "ConfigMap" and name.startswith("rings-config-")]
    for doc in rings:
        # As mounted before the Ascend operator fills it in.
        folder = host.root / volume_mount(objects, "hccl-config").lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in doc["data"].items():
            (folder / name).write_text(text)
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in sim_env(tmp_path, host).items():
        monkeypatch.setenv(name, value)
    pod_ip = "10.0.0.5"
    npus = npu_count(platform)
    for name, item in env_of(objects).items():
        if "value" in item:
            monkeypatch.setenv(name, item["value"])
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "status.podIP":
            monkeypatch.setenv(name, pod_ip)
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == f"metadata.annotations['{RESOURCE}']":
            # What Volcano writes: the device names of the NPUs it chose.
            chosen = ",".join(f"Ascend910-{chip.phy_id}" for chip in PROFILES[PLATFORMS[platform]].chips)
            assert sorted(parse_id_list(chosen, allow_ranges=True)) == list(range(npus))
            monkeypatch.setenv(name, chosen)
    monkeypatch.setenv("CONFIG_FROM_CONFIG_FILE_PATH", str(conf))
    settings = load_settings(output_dir=tmp_path / "out")
    plan = make_plan(discover(settings), load_inputs(settings), settings, FakeChecker())
    assert len(plan.servers) * plan.world_size == npus
    assert sum(len(server.devices) for server in plan.servers) == npus
    assert (plan.p_rate, plan.d_rate) == (1, 1)
    assert plan.coordinator.predict_ip == pod_ip
    assert plan.coordinator.predict_port == container_port(objects, "predict")
    assert plan.supervisor.api_port == container_port(objects, "http")


# --- the scale-out Deployment ------------------------------------------------------------------


def test_scale_out_runs_several_pods_one_per_node() -> None:
    objects = load("scale-out")
    spec = deployment(objects)["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] >= 2
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    # The rule must select the Deployment's own pods, or it keeps nothing apart.
    assert term["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert term["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert "topologySpreadConstraints" not in pod, "one rule for one pod per node, not two"


def test_scale_out_replaces_one_pod_at_a_time_without_a_surge() -> None:
    strategy = deployment(load("scale-out"))["spec"]["strategy"]
    # A surge pod would wait for NPUs no node has free; one unavailable at a time keeps the rest serving.
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_scale_out_pods_are_the_single_pods_but_for_scheduling_and_the_service() -> None:
    """The pod the InferencePool and the autoscalers count on is the one the single-pod manifest runs:
    same container, probes, drain and grace period."""
    single, scaled = load("800i-a2"), load("scale-out")
    assert container(scaled) == container(single)
    pod_single, pod_scaled = (deployment(o)["spec"]["template"] for o in (single, scaled))
    assert pod_scaled["metadata"] == pod_single["metadata"]
    assert {k: v for k, v in pod_scaled["spec"].items() if k != "affinity"} == pod_single["spec"]
    assert scaled[("ConfigMap", "config-file-path")] == single[("ConfigMap", "config-file-path")]


def test_a_scale_in_drains_before_the_pod_stops_serving() -> None:
    """Deleted, the pod leaves the endpoints (and the endpoint picker) at once but serves on through
    preStop; SIGTERM then starts the drain, which the grace period outlasts."""
    objects = load("scale-out")
    spec = container(objects)
    assert spec["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    prestop = float(spec["lifecycle"]["preStop"]["exec"]["command"][1])
    assert prestop >= 1, "without a pause, SIGTERM's 503s reach requests routed before the removal"
    grace = setting(objects, "grace_seconds", "SUPERVISOR_PD_GRACE_SECONDS")
    period = deployment(objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert period >= prestop + grace + GROUP_GONE_LIMIT + 1


# --- the Prometheus operator's scrape objects ---------------------------------------------------

MONITORS = {"PodMonitor": K8S / "podmonitor.yaml", "ServiceMonitor": K8S / "servicemonitor.yaml"}
# monitoring.coreos.com/v1 fields (prometheus-operator pkg/apis/monitoring/v1/podmonitor_types.go
# PodMonitorSpec, PodMetricsEndpoint; servicemonitor_types.go ServiceMonitorSpec, types.go
# Endpoint): the ones these files may use. kubernetes-validate has no schema for the operator's
# kinds, so the fields are checked here.
ENDPOINTS = {"PodMonitor": "podMetricsEndpoints", "ServiceMonitor": "endpoints"}
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def monitor(kind: str) -> dict[str, Any]:
    with MONITORS[kind].open() as handle:
        (document,) = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    return dict(document)


def seconds(duration: str) -> int:
    match = DURATION.fullmatch(duration)
    assert match is not None and duration, f"{duration!r} is not a Prometheus duration this test reads (1h2m3s)"
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


@pytest.mark.parametrize("kind", MONITORS)
def test_the_monitor_goes_where_the_deployment_goes(kind: str) -> None:
    # Its fields are checked against the operator's CRD schema (tests/integration/test_scale_out_manifests.py).
    doc = monitor(kind)
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", kind)
    assert "namespace" not in doc["metadata"], "applied in the namespace of the Deployment, as the manifests are"


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kind", MONITORS)
def test_the_monitor_scrapes_supervisor_pds_metrics_in_the_pod(kind: str, platform: str) -> None:
    objects = load(platform)
    doc = monitor(kind)
    selector = doc["spec"]["selector"]["matchLabels"]
    (endpoint,) = doc["spec"][ENDPOINTS[kind]]
    api_port = int(setting(objects, "api_port", "SUPERVISOR_PD_API_PORT"))
    if kind == "PodMonitor":
        labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
        port = container_port(objects, endpoint["port"])
    else:
        svc = service(objects)
        labels = svc["metadata"]["labels"]
        (named,) = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
        port = container_port(objects, named["targetPort"])
    assert selector.items() <= labels.items(), f"{kind} selects {selector}, the {platform} objects carry {labels}"
    assert port == api_port, f"{kind} scrapes port {endpoint['port']} ({port}), supervisor_pd listens on {api_port}"
    annotations = deployment(objects)["spec"]["template"]["metadata"]["annotations"]
    assert endpoint["path"] == annotations["prometheus.io/path"]
    assert endpoint["path"] in served_get_paths()


@pytest.mark.parametrize("kind", MONITORS)
def test_the_scrape_timeout_outlasts_supervisor_pds_own_scrape_of_the_children(kind: str) -> None:
    (endpoint,) = monitor(kind)["spec"][ENDPOINTS[kind]]
    timeout = seconds(endpoint["scrapeTimeout"])
    assert timeout <= seconds(endpoint["interval"]), "Prometheus refuses a timeout longer than the interval"
    # The children are scraped in parallel, each within metrics_timeout; then supervisor_pd answers.
    assert timeout >= 2 * float(Settings.model_fields["metrics_timeout"].default)
