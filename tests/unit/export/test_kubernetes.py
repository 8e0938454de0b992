"""`export kubernetes`: the manifests follow the plan and the settings, one value at a time."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.export.kubernetes import manifests, pod_facts, replicas_value
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.platform.facts import DeviceType
from supervisor_pd.runtime.drain import GROUP_GONE_LIMIT
from supervisor_pd.settings import Settings
from tests import factories
from tests.helpers import SAMPLE_CONF

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")

RESOURCE = "huawei.com/Ascend910"
A3_NODES = {0: "0-39", 1: "40-79", 2: "80-119", 3: "120-159"}


def export(
    settings: Settings | None = None,
    *,
    a3: bool = False,
    replicas: int = 1,
    scale_out: bool = False,
    conf_dir: Path = SAMPLE_CONF,
    chips: int | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects for a plan on a fake A2 (8 NPUs) or A3 (8 NPUs x 2 dies), by (kind, name)."""
    settings = settings or Settings()
    if a3:
        facts = factories.facts(
            factories.chips(chips or 16, per_node=4, per_npu=2), nodes=A3_NODES, cpus="0-159", device_type=DeviceType.A3
        )
    else:
        facts = factories.facts(factories.chips(chips or 8, per_node=4))
    inputs = dataclasses.replace(factories.inputs(), conf_dir=conf_dir)
    plan = make_plan(facts, inputs, settings, factories.FakeChecker())
    prepared = SimpleNamespace(settings=settings, plan=plan, inputs=inputs, facts=facts)
    text = manifests(pod_facts(prepared, replicas, scale_out))  # type: ignore[arg-type]
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(text) if doc}


def pod(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return dict(objects[("Deployment", "mindie-server")]["spec"]["template"]["spec"])


def container(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (found,) = pod(objects)["containers"]
    return dict(found)


def env(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str | None]:
    return {item["name"]: item.get("value") for item in container(objects)["env"]}


@pytest.mark.parametrize(("a3", "chips", "servers"), [(False, 8, 4), (True, 16, 8), (False, 4, 2)])
def test_the_npu_request_is_the_plans_npus(a3: bool, chips: int, servers: int) -> None:
    objects = export(a3=a3, chips=chips)
    resources = container(objects)["resources"]
    assert resources["requests"][RESOURCE] == resources["limits"][RESOURCE] == chips
    assert resources["requests"]["memory"] == f"{64 * servers}Gi"


def test_an_a3_pod_is_scheduled_by_volcano_with_its_super_pod_block_and_hccl_json() -> None:
    objects = export(a3=True)
    deploy = objects[("Deployment", "mindie-server")]
    assert pod(objects)["schedulerName"] == "volcano"
    assert pod(objects)["nodeSelector"]["accelerator-type"] == "module-a3-16"
    assert deploy["metadata"]["annotations"]["sp-block"] == "16"
    assert deploy["spec"]["template"]["metadata"]["annotations"]["sp-block"] == "16"
    assert ("ConfigMap", "rings-config-mindie-server") in objects
    visible = [item for item in container(objects)["env"] if item["name"] == "ASCEND_VISIBLE_DEVICES"]
    assert visible[0]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{RESOURCE}']"
    a2 = export()
    assert "schedulerName" not in pod(a2)
    assert "ASCEND_VISIBLE_DEVICES" not in env(a2)
    assert ("ConfigMap", "rings-config-mindie-server") not in a2


@pytest.mark.parametrize(("grace", "written", "period"), [(None, "60", 80), (100.0, "100", 120), (12.5, "12.5", 33)])
def test_the_grace_period_follows_the_drain_setting(grace: float | None, written: str, period: int) -> None:
    settings = Settings(grace_seconds=grace) if grace is not None else Settings()
    objects = export(settings)
    assert env(objects)["SUPERVISOR_PD_GRACE_SECONDS"] == written
    assert pod(objects)["terminationGracePeriodSeconds"] == period
    prestop = float(container(objects)["lifecycle"]["preStop"]["exec"]["command"][1])
    assert period >= prestop + float(written) + GROUP_GONE_LIMIT


@pytest.mark.parametrize(("ready", "failures"), [(1800.0, 186), (600.0, 66), (95.0, 16)])
def test_the_startup_probe_outlasts_the_ready_deadline(ready: float, failures: int) -> None:
    objects = export(Settings(ready_seconds=ready))
    probe = container(objects)["startupProbe"]
    assert probe["failureThreshold"] == failures
    budget = probe["periodSeconds"] * probe["failureThreshold"]
    assert budget > ready
    assert objects[("Deployment", "mindie-server")]["spec"]["progressDeadlineSeconds"] > budget
    assert env(objects)["SUPERVISOR_PD_READY_SECONDS"] == f"{ready:g}"


@pytest.mark.parametrize("port", [8080, 9090])
def test_probes_scrape_and_service_follow_the_api_port(port: int) -> None:
    objects = export(Settings(api_port=port))
    spec = container(objects)
    ports = {item["name"]: item["containerPort"] for item in spec["ports"]}
    assert ports == {"http": port, "predict": 1025}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ports[spec[probe]["httpGet"]["port"]] == port
    annotations = objects[("Deployment", "mindie-server")]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert env(objects)["SUPERVISOR_PD_API_PORT"] == str(port)
    service = {item["name"]: item for item in objects[("Service", "mindie-service")]["spec"]["ports"]}
    assert (service["http"]["port"], service["http"]["targetPort"]) == (port, "http")
    assert (service["predict"]["port"], service["predict"]["targetPort"]) == (1025, "predict")


def test_the_predict_port_is_the_coordinators() -> None:
    def moved(data: dict[str, Any]) -> None:
        data["http_config"]["predict_port"] = "1125"

    settings = Settings()
    facts = factories.facts(factories.chips(8, per_node=4))
    inputs = dataclasses.replace(factories.inputs(coordinator=moved), conf_dir=SAMPLE_CONF)
    plan = make_plan(facts, inputs, settings, factories.FakeChecker())
    text = manifests(pod_facts(SimpleNamespace(settings=settings, plan=plan, inputs=inputs, facts=facts), 1, False))  # type: ignore[arg-type]
    (deploy,) = [doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Deployment"]
    ports = {p["name"]: p["containerPort"] for p in deploy["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports["predict"] == 1125


def test_one_pod_is_recreated_several_are_spread_one_per_node_and_rolled_one_at_a_time() -> None:
    single = export()
    spec = single[("Deployment", "mindie-server")]["spec"]
    assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
    assert "affinity" not in pod(single)
    assert single[("Service", "mindie-service")]["spec"]["type"] == "NodePort"

    scaled = export(replicas=3, scale_out=True)
    spec = scaled[("Deployment", "mindie-server")]["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    (term,) = pod(scaled)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == {"labelSelector": {"matchLabels": {"app": "mindie-server"}}, "topologyKey": "kubernetes.io/hostname"}
    service = scaled[("Service", "mindie-service")]["spec"]
    assert service["type"] == "ClusterIP"
    assert all("nodePort" not in port for port in service["ports"])


def test_a3_scale_out_leaves_out_the_operators_hccl_json() -> None:
    objects = export(a3=True, replicas=2, scale_out=True)
    assert ("ConfigMap", "rings-config-mindie-server") not in objects
    assert all(mount["name"] != "hccl-config" for mount in container(objects)["volumeMounts"])
    assert "ring-controller.atlas" not in objects[("Deployment", "mindie-server")]["metadata"]["labels"]
    assert pod(objects)["schedulerName"] == "volcano"


@pytest.mark.parametrize(
    ("text", "scale_out", "expected"),
    [(None, False, 1), (None, True, 2), ("1", False, 1), ("1", True, 1), ("7", True, 7)],
)
def test_replicas(text: str | None, scale_out: bool, expected: int) -> None:
    assert replicas_value(text, scale_out) == expected


@pytest.mark.parametrize(
    ("text", "scale_out", "says"),
    [
        ("0", True, "from 1 to"),
        ("-1", True, "from 1 to"),
        ("two", True, "from 1 to"),
        ("1.5", True, "from 1 to"),
        ("", True, "from 1 to"),
        ("\u0663", True, "from 1 to"),  # an Arabic-Indic three: a digit to str.isdigit, not to Kubernetes
        ("2147483648", True, "from 1 to 2147483647"),
        ("2", False, "need --scale-out"),
    ],
)
def test_a_bad_replica_count_names_the_flag(text: str, scale_out: bool, says: str) -> None:
    with pytest.raises(InputError) as caught:
        replicas_value(text, scale_out)
    assert caught.value.where == "--replicas"
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_configmap_holds_the_files_byte_for_byte(tmp_path: Path) -> None:
    for path in SAMPLE_CONF.glob("*.json"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    config = json.loads((SAMPLE_CONF / "config.json").read_text())
    # A site's own layout: tabs, CRLF line ends, no final newline, non-ASCII.
    odd = json.dumps(config, indent="\t", ensure_ascii=False).replace("\n", "\r\n").replace("llama3-8b", "模型")
    (tmp_path / "config.json").write_text(odd, newline="")
    objects = export(conf_dir=tmp_path)
    data = objects[("ConfigMap", "config-file-path")]["data"]
    assert sorted(data) == ["config.json", "ms_controller.json", "ms_coordinator.json"]
    assert data["config.json"] == odd
    for name in ("ms_controller.json", "ms_coordinator.json"):
        assert data[name] == (SAMPLE_CONF / name).read_text()


def test_the_model_folder_follows_config_json() -> None:
    objects = export()
    mounts = {mount["name"]: mount["mountPath"] for mount in container(objects)["volumeMounts"]}
    assert mounts["model-weights"] == "/mnt/mindie-service/ms/model"
    (weights,) = [v for v in pod(objects)["volumes"] if v["name"] == "model-weights"]
    assert weights["hostPath"] == {"path": "/data/models/llama3-8b", "type": "Directory"}


def test_the_same_inputs_give_the_same_bytes() -> None:
    def text() -> str:
        settings = Settings()
        facts = factories.facts(factories.chips(8, per_node=4))
        inputs = dataclasses.replace(factories.inputs(), conf_dir=SAMPLE_CONF)
        plan = make_plan(facts, inputs, settings, factories.FakeChecker())
        prepared = SimpleNamespace(settings=settings, plan=plan, inputs=inputs, facts=facts)
        return manifests(pod_facts(prepared, 2, True))  # type: ignore[arg-type]

    assert text() == text()
