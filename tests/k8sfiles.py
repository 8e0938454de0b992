"""The files of configs/k8s and their objects, sorted into built-in kinds and custom resources.

kubernetes-validate has schemas for Kubernetes' own API groups only; an object of any other group
(InferencePool, HTTPRoute, ScaledObject, PodMonitor, ...) is a custom resource, checked against
its vendored CRD schema (tests/integration/test_scale_out_manifests.py). Which is which is decided
by the apiVersion's group, so a misspelt built-in group is not taken for a custom resource unnoticed:
it fails kubernetes-validate's lookup instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

K8S = REPO / "configs" / "k8s"
# The API groups of Kubernetes itself (kubectl api-resources on 1.32, less the aggregated metrics
# groups, which no manifest creates). Groups ending in .k8s.io that are not here (the Gateway API's
# gateway.networking.k8s.io, the inference extension's inference.networking.k8s.io) are CRDs.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
    }
)


def manifest_files() -> list[Path]:
    """Every YAML file under configs/k8s, recursively, in a fixed order."""
    return sorted(path for path in K8S.rglob("*") if path.suffix in {".yaml", ".yml"} and path.is_file())


def objects(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def api_group(doc: dict[str, Any]) -> str:
    version = str(doc["apiVersion"])
    return version.rsplit("/", 1)[0] if "/" in version else ""


def is_builtin(doc: dict[str, Any]) -> bool:
    return api_group(doc) in BUILTIN_GROUPS


def shown(path: Path) -> str:
    return str(path.relative_to(REPO))
