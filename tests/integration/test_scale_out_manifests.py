"""configs/k8s/scale-out and every custom resource in configs/k8s: the vendored schemas, and each other.

Offline: each custom-resource object is validated with jsonschema against the openAPIV3Schema of
its CRD in tests/data/crds (pinned releases, README.md there), the built-in kinds of the
scale-out files with kubernetes-validate --strict, and the two configs carried in ConfigMaps (the
endpoint picker's, prometheus-adapter's) against schemas written from their Go types. Then the
objects are checked against each other and against supervisor_pd: the gauges they name, the pods
and port they select, the drain they must not cut short.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor_pd.api.proxy import OPENAI_PATHS, PREDICT_PATHS
from supervisor_pd.settings import Settings
from tests.crdschema import CRDS, K8S, Doc, crd_problems, crd_schemas, documents, go_schema, problems, strict, yaml
from tests.helpers import REPO
from tests.integration.test_k8s_manifests import served_get_paths

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")

SCALE_OUT = K8S / "scale-out"
KUBERNETES = "1.32"
# The pod gauges' names: the contract of issue 17 between the manifests and supervisor_pd/api.
GAUGES = {
    "waiting": "supervisor_pd_pod_requests_waiting",
    "running": "supervisor_pd_pod_requests_running",
    "kv": "supervisor_pd_pod_kv_cache_usage_ratio",
}
# 1 while /readyz answers 200: the autoscalers count only the pods it says are ready.
READY = "supervisor_pd_service_ready"
POD_LABELS = {"app": "mindie-server"}
# Set, any of these stops the v1.5.0 endpoint picker at start (pkg/epp/server/options.go:228-240).
REFUSED_EPP_FLAGS = {"total-queued-requests-metric", "total-running-requests-metric", "lora-info-metric"}
REFUSED_EPP_FLAGS |= {"kv-cache-usage-percentage-metric", "cache-info-metric"}
# The prometheus scaler's trigger metadata (kedacore/keda v2.20.2 pkg/scalers/prometheus_scaler.go:44-60).
KEDA_PROMETHEUS_KEYS = {"serverAddress", "query", "queryParameters", "threshold", "activationThreshold", "namespace"}
KEDA_PROMETHEUS_KEYS |= {"customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout", "identityOwner"}
X_K8S = "inference.networking.x-k8s.io"
# What the EPP watches (the extension's chart, config/charts/inferencepool/templates/rbac.yaml).
EPP_READS = {("", "pods"), ("inference.networking.k8s.io", "inferencepools"), (X_K8S, "inferenceobjectives")}


# --- the manifests -------------------------------------------------------------------------------


def one(kind: str, name: str | None = None) -> Doc:
    (found,) = [d for _, d in documents(SCALE_OUT) if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return found


def ident(item: tuple[Path, Doc]) -> str:
    return f"{item[0].relative_to(K8S)}:{item[1]['kind']}/{item[1]['metadata']['name']}"


def pod_deployments() -> list[Doc]:
    """Every Deployment of supervisor_pd pods in configs/k8s (the single-pod ones and the scale-out one)."""
    found = [
        d
        for _, d in documents()
        if d["kind"] == "Deployment" and POD_LABELS.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert found, "no Deployment of app: mindie-server pods in configs/k8s"
    return found


def container_port(deploy: Doc, name: str) -> int:
    (found,) = [
        p["containerPort"]
        for c in deploy["spec"]["template"]["spec"]["containers"]
        for p in c["ports"]
        if p["name"] == name
    ]
    return int(found)


def env_value(deploy: Doc, variable: str, default: float) -> float:
    env = {
        e["name"]: e.get("value") for c in deploy["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])
    }
    return float(env.get(variable) or default)


def epp_config() -> Doc:
    (text,) = one("ConfigMap", "mindie-server-epp")["data"].values()
    return dict(yaml.safe_load(text))


def adapter_config() -> Doc:
    return dict(yaml.safe_load(one("ConfigMap", "adapter-config")["data"]["config.yaml"]))


def quantity(value: str | int | float) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


# --- every object has a schema and matches it ----------------------------------------------------

CUSTOM = [item for item in documents() if (item[1]["apiVersion"], item[1]["kind"]) in crd_schemas()]
BUILTIN = [item for item in documents() if (item[1]["apiVersion"], item[1]["kind"]) not in crd_schemas()]


def test_every_vendored_schema_names_its_source() -> None:
    readme = (CRDS / "README.md").read_text()
    for path in sorted(CRDS.glob("*.json")):
        source = json.loads(path.read_text())["source"]
        assert source["repository"] and source["tag"] and re.fullmatch(r"[0-9a-f]{40}", source["commit"]), path.name
        assert path.name in readme and source["commit"][:12] in readme, f"{path.name}: list it in README.md"


@pytest.mark.parametrize("item", BUILTIN, ids=ident)
def test_an_object_of_no_vendored_crd_is_a_kind_kubernetes_validate_knows(item: tuple[Path, Doc]) -> None:
    path, doc = item
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=path.parent == SCALE_OUT)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(
            f"{ident(item)}: {doc['apiVersion']} {doc['kind']} has no schema: vendor its CRD in tests/data/crds"
        )
    except kubernetes_validate.ValidationError as error:
        # Strict for the scale-out files; the single-pod manifests' own test validates them strictly.
        pytest.fail(f"{ident(item)}: {error.message} at {'.'.join(str(p) for p in error.path)}")


@pytest.mark.parametrize("item", CUSTOM, ids=ident)
def test_a_custom_resource_matches_its_vendored_crd(item: tuple[Path, Doc]) -> None:
    assert crd_problems(item[1]) == []


def test_the_custom_resources_are_all_there() -> None:
    kinds = {doc["kind"] for _, doc in CUSTOM}
    assert {"InferencePool", "InferenceObjective", "HTTPRoute", "ScaledObject", "PodMonitor", "ServiceMonitor"} <= kinds


TYPOS = [
    ("InferencePool", ["spec", "endpointPickerRef"], "failuremode"),
    ("InferencePool", ["spec", "targetPorts", 0], "port"),
    ("InferenceObjective", ["spec"], "priorty"),
    ("HTTPRoute", ["spec", "rules", 0], "timeout"),
    ("ScaledObject", ["spec"], "minReplicas"),
    ("ScaledObject", ["spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown"], "window"),
    ("PodMonitor", ["spec", "podMetricsEndpoints", 0], "scrapeTimout"),
    ("ServiceMonitor", ["spec"], "endpoint"),
]


@pytest.mark.parametrize(("kind", "where", "typo"), TYPOS, ids=[f"{k}-{t}" for k, _, t in TYPOS])
def test_an_unknown_field_fails_the_schema(kind: str, where: list[str | int], typo: str) -> None:
    (doc,) = [copy.deepcopy(d) for _, d in CUSTOM if d["kind"] == kind][:1]
    node: Any = doc
    for step in where:
        node = node[step]
    node[typo] = "x"
    assert any(typo in line for line in crd_problems(doc)), crd_problems(doc)


def test_the_schema_translation_keeps_types_and_open_objects() -> None:
    (monitor,) = [copy.deepcopy(d) for _, d in CUSTOM if d["kind"] == "ServiceMonitor"]
    endpoint = monitor["spec"]["endpoints"][0]
    for target in (8080, "http"):  # x-kubernetes-int-or-string
        endpoint["targetPort"] = target
        assert crd_problems(monitor) == []
    endpoint["targetPort"] = 80.5
    assert crd_problems(monitor) != []
    pool = copy.deepcopy(one("InferencePool"))
    pool["spec"]["targetPorts"][0]["number"] = "8080"
    assert any("targetPorts.0.number" in line for line in crd_problems(pool))
    pool = copy.deepcopy(one("InferencePool"))
    pool["metadata"]["uid"] = "x"
    assert crd_problems(pool) == ["metadata.uid: not checked here"]
    scaled = copy.deepcopy(one("ScaledObject"))
    scaled["spec"]["maxReplicaCount"] = 2**31  # format int32
    assert any("maxReplicaCount" in line for line in crd_problems(scaled))
    opened = strict({"type": "object", "properties": {"a": {}}, "x-kubernetes-preserve-unknown-fields": True})
    assert problems(opened, {"a": 1, "b": 2}) == []


# --- the endpoint picker -------------------------------------------------------------------------


def epp_args() -> dict[str, str]:
    (container,) = one("Deployment", "mindie-server-epp")["spec"]["template"]["spec"]["containers"]
    assert all(arg.startswith("--") and "=" in arg for arg in container["args"]), "write flags as --name=value"
    return dict(arg[2:].split("=", 1) for arg in container["args"])


def test_the_epp_config_is_one_the_v1_5_0_picker_reads() -> None:
    config = epp_config()
    assert problems(go_schema("endpointpickerconfig.v1alpha1.json"), config, openapi=False) == []
    plugins = {p.get("name", p["type"]): p for p in config["plugins"]}
    refs = [p["pluginRef"] for profile in config["schedulingProfiles"] for p in profile["plugins"]]
    refs += [config["saturationDetector"]["pluginRef"]]
    for source in config["dataLayer"]["sources"]:
        refs += [source["pluginRef"], *(e["pluginRef"] for e in source["extractors"])]
    assert set(refs) <= set(plugins), sorted(set(refs) - set(plugins))
    extractor = plugins["core-metrics-extractor"]["parameters"]
    engines = {engine["name"]: engine for engine in extractor["engineConfigs"]}
    engine = engines[extractor["defaultEngine"]]
    assert engine["queuedRequestsSpec"] == GAUGES["waiting"]
    assert engine["runningRequestsSpec"] == GAUGES["running"]
    assert engine["kvUsageSpec"] == GAUGES["kv"]
    assert engine["loraSpec"] == engine["cacheInfoSpec"] == "", "no MindIE equivalent: disable the lookups"
    source = plugins["metrics-data-source"]["parameters"]
    assert source["path"] == "/metrics/pod" and source["path"] in served_get_paths()


def test_a_misspelt_plugin_parameter_fails_though_the_picker_would_ignore_it() -> None:
    config = epp_config()
    (extractor,) = [p for p in config["plugins"] if p["type"] == "core-metrics-extractor"]
    extractor["parameters"]["engineConfigs"][0]["queuedRequestSpec"] = GAUGES["waiting"]
    assert any(
        "queuedRequestSpec" in line
        for line in problems(go_schema("endpointpickerconfig.v1alpha1.json"), config, openapi=False)
    )
    config = epp_config()
    config["data"] = config.pop("dataLayer")  # the v1.5.0 guide's spelling, refused by the strict decoder
    assert problems(go_schema("endpointpickerconfig.v1alpha1.json"), config, openapi=False) != []


def test_the_epp_serves_the_pool_it_is_referenced_by() -> None:
    pool, args = one("InferencePool"), epp_args()
    deploy = one("Deployment", "mindie-server-epp")
    pod = deploy["spec"]["template"]["spec"]
    assert not REFUSED_EPP_FLAGS & set(args), "the v1.5.0 EPP refuses these flags: use engineConfigs"
    assert args["pool-name"] == pool["metadata"]["name"]
    assert args["pool-group"] == pool["apiVersion"].split("/")[0]
    (container,) = pod["containers"]
    assert container["image"].endswith(
        ":" + json.loads((CRDS / "inferencepools.inference.networking.k8s.io.json").read_text())["source"]["tag"]
    )
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    config_map = one("ConfigMap", volume["configMap"]["name"])
    assert args["config-file"] in {f"{mount['mountPath']}/{key}" for key in config_map["data"]}
    ref = pool["spec"]["endpointPickerRef"]
    service = one("Service", ref["name"])
    assert service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]["number"]]
    assert container_port(deploy, port["targetPort"]) == ref["port"]["number"] == 9002  # the EPP's --grpc-port
    binding = one("RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"]}]
    role = one("Role", binding["roleRef"]["name"])
    assert {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]} >= EPP_READS


def test_the_pool_selects_supervisor_pds_pods_on_supervisor_pds_port() -> None:
    pool = one("InferencePool")
    assert [p["number"] for p in pool["spec"]["targetPorts"]] == [Settings.model_fields["api_port"].default]
    for deploy in pod_deployments():
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert pool["spec"]["selector"]["matchLabels"].items() <= labels.items(), deploy["metadata"]
        assert container_port(deploy, "http") == pool["spec"]["targetPorts"][0]["number"]
    # The model server protocol: the Completions and Chat APIs and /metrics on that port.
    assert set(OPENAI_PATHS) <= set(PREDICT_PATHS) and "/metrics" in served_get_paths()


def test_the_route_sends_only_the_openai_paths_to_the_pool() -> None:
    route, pool = one("HTTPRoute"), one("InferencePool")
    (rule,) = route["spec"]["rules"]
    pool_ref = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": pool["metadata"]["name"]}
    assert rule["backendRefs"] == [pool_ref]
    for match in rule["matches"]:
        path = match["path"]
        allowed = set(PREDICT_PATHS) if path["type"] == "Exact" else {"/v1/models"}
        assert path["value"] in allowed, f"{path}: not an inference path supervisor_pd proxies"
    seconds = re.fullmatch(r"(\d+)s", rule["timeouts"]["request"])
    assert seconds, f"{rule['timeouts']['request']}: write the timeout in whole seconds"
    timeout = float(seconds.group(1))
    for deploy in pod_deployments():
        grace = env_value(deploy, "SUPERVISOR_PD_GRACE_SECONDS", Settings.model_fields["grace_seconds"].default)
        assert timeout >= grace / 2, (
            "the drain lets requests in flight run for half the grace period (runtime/drain.py)"
        )


def test_the_objectives_name_the_pool() -> None:
    pool = one("InferencePool")
    for _, doc in documents(SCALE_OUT):
        if doc["kind"] == "InferenceObjective":
            ref = doc["spec"]["poolRef"]
            assert (ref["group"], ref["name"]) == ("inference.networking.k8s.io", pool["metadata"]["name"])


# --- the autoscalers -----------------------------------------------------------------------------


def hpa_targets() -> dict[str, float]:
    metrics = one("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert all(m["type"] == "Pods" and m["pods"]["target"]["type"] == "AverageValue" for m in metrics)
    return {m["pods"]["metric"]["name"]: quantity(m["pods"]["target"]["averageValue"]) for m in metrics}


def keda_targets() -> dict[str, float]:
    found = {}
    for trigger in one("ScaledObject")["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
        assert set(meta) <= KEDA_PROMETHEUS_KEYS, sorted(set(meta) - KEDA_PROMETHEUS_KEYS)
        # The scaler refuses an answer of more than one element: the query sums the pool.
        assert meta["query"].startswith("sum(") and meta["ignoreNullValues"] == "false"
        assert f"{READY}{{" in meta["query"], "sum over the ready pods only"
        (gauge,) = set(re.findall(r"supervisor_pd_pod_\w+", meta["query"]))
        found[gauge] = quantity(meta["threshold"])
    return found


def test_hpa_and_keda_scale_the_same_deployment_on_the_same_gauges_and_targets() -> None:
    hpa, scaled = one("HorizontalPodAutoscaler")["spec"], one("ScaledObject")["spec"]
    assert GAUGES["waiting"] in hpa_targets() and set(hpa_targets()) <= set(GAUGES.values())
    assert keda_targets() == hpa_targets()
    assert (
        hpa["scaleTargetRef"]
        == scaled["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mindie-server"}
    )
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (scaled["minReplicaCount"], scaled["maxReplicaCount"])
    assert hpa["behavior"] == scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert scaled["fallback"]["replicas"] >= scaled["minReplicaCount"]
    assert 0 < hpa_targets()[GAUGES["kv"]] <= 1, "a ratio in [0, 1]"


def test_scale_in_removes_one_pod_at_a_time_no_faster_than_a_pod_drains() -> None:
    hpa = one("HorizontalPodAutoscaler")["spec"]
    down = hpa["behavior"]["scaleDown"]
    assert hpa["minReplicas"] >= 2, "one pod serves while another is drained or evicted"
    assert [(p["type"], p["value"]) for p in down["policies"]] == [("Pods", 1)]
    for deploy in pod_deployments():
        grace = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert down["policies"][0]["periodSeconds"] >= grace
    replicas = one("Deployment", "mindie-server")["spec"].get("replicas")  # absent once an autoscaler owns it
    assert replicas is None or hpa["minReplicas"] <= replicas <= hpa["maxReplicas"]


def test_the_adapter_rule_publishes_each_gauge_under_the_name_the_hpa_asks_for() -> None:
    config = adapter_config()
    assert problems(go_schema("prometheus-adapter-config.v0.12.0.json"), config, openapi=False) == []
    (rule,) = config["rules"]
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    (names,) = re.findall(r'__name__=~"([^"]+)"', rule["seriesQuery"])
    as_python = re.sub(r"\$\{(\d+)\}|\$(\d+)", lambda m: rf"\g<{m.group(1) or m.group(2)}>", rule["name"]["as"])
    for gauge in GAUGES.values():
        assert re.fullmatch(names, gauge), f"{gauge}: not discovered by {names}"
        assert re.sub(rule["name"]["matches"], as_python, gauge) == gauge
    assert set(re.findall(r"<<\s*\.(\w+)\s*>>", rule["metricsQuery"])) == {"Series", "LabelMatchers", "GroupBy"}
    assert f"{READY}{{<<.LabelMatchers>>}}" in rule["metricsQuery"], "the ready pods only"


def test_the_queries_are_promql(tmp_path: Path) -> None:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run does it)")
    rule = adapter_config()["rules"][0]
    rendered = rule["metricsQuery"].replace("<<.Series>>", GAUGES["waiting"])
    rendered = rendered.replace("<<.LabelMatchers>>", 'namespace="mindie",pod=~"a|b"').replace("<<.GroupBy>>", "pod")
    queries = [rule["seriesQuery"], rendered] + [
        t["metadata"]["query"] for t in one("ScaledObject")["spec"]["triggers"]
    ]
    group = {"name": "scale-out", "rules": [{"record": f"q:{i}", "expr": q} for i, q in enumerate(queries)]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    done = subprocess.run(
        [tool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pdb_lets_one_pod_of_the_deployment_go_at_a_time() -> None:
    pdb = one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    for deploy in pod_deployments():
        assert pdb["selector"] == deploy["spec"]["selector"]


# --- the gauges ----------------------------------------------------------------------------------


def test_the_manifests_name_only_the_contracts_gauges() -> None:
    for path in sorted(SCALE_OUT.glob("*.yaml")):
        named = set(re.findall(r"supervisor_pd_pod_\w+", path.read_text()))
        assert named <= set(GAUGES.values()), f"{path.name}: {sorted(named - set(GAUGES.values()))}"


def test_supervisor_pd_exports_the_gauges_the_manifests_name() -> None:
    source = "\n".join(p.read_text() for p in sorted((REPO / "supervisor_pd").rglob("*.py")))
    assert re.search(rf"[\"']{READY}[\"']", source), f"{READY}: the autoscalers' queries use it"
    exported = {name for name in GAUGES.values() if re.search(rf"[\"']{name}[\"']", source)}
    if not exported:
        pytest.skip("supervisor_pd does not export the pod gauges yet (issue 17's gauges part)")
    assert exported == set(GAUGES.values()), f"not in supervisor_pd: {sorted(set(GAUGES.values()) - exported)}"
