"""Regenerate the vendored CRD schemas in this folder from the projects' release tags.

    python tests/data/crds/extract.py [MIRROR_ROOT]

MIRROR_ROOT holds bare git clones named owner+name/repo (default /work/.mirror); each CRD is read
with `git show TAG:PATH`, so the output depends on the tag alone. Only what validation uses is
kept: per served version, the openAPIV3Schema without its prose (`description`), plus the source.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
# (repository, tag, CRD path, JSON patches the project's own kustomization applies to it)
SOURCES: list[tuple[str, str, str, list[str]]] = [
    (
        "kubernetes-sigs/gateway-api-inference-extension",
        "v1.5.0",
        "config/crd/bases/inference.networking.k8s.io_inferencepools.yaml",
        [],
    ),
    (
        "kubernetes-sigs/gateway-api-inference-extension",
        "v1.5.0",
        "config/crd/bases/inference.networking.x-k8s.io_inferenceobjectives.yaml",
        [],
    ),
    ("kubernetes-sigs/gateway-api", "v1.5.1", "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml", []),
    (
        "kedacore/keda",
        "v2.20.2",
        "config/crd/bases/keda.sh_scaledobjects.yaml",
        ["config/crd/patches/scaledobject_patch.yaml"],
    ),
    (
        "prometheus-operator/prometheus-operator",
        "v0.93.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
        [],
    ),
    (
        "prometheus-operator/prometheus-operator",
        "v0.93.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        [],
    ),
]
# Keys whose value maps field names to schemas: a field may itself be called "description".
NAMED_SCHEMAS = ("properties", "patternProperties", "definitions")
ONE_SCHEMA = ("items", "additionalProperties", "not")
LIST_OF_SCHEMAS = ("allOf", "anyOf", "oneOf")


def git(mirror: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(mirror), *args], check=True, capture_output=True, text=True).stdout


def without_prose(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: without_prose(sub) for name, sub in value.items()}
        elif key in ONE_SCHEMA and isinstance(value, dict):
            out[key] = without_prose(value)
        elif key in LIST_OF_SCHEMAS and isinstance(value, list):
            out[key] = [without_prose(sub) for sub in value]
        else:
            out[key] = value
    return out


def apply_adds(document: dict[str, Any], patch: list[dict[str, Any]]) -> None:
    """The JSON patch operations the projects use on their CRDs: `add` only."""
    for op in patch:
        if op["op"] != "add":
            raise SystemExit(f"patch operation {op['op']!r} is not supported here; only add")
        *parents, last = op["path"].lstrip("/").split("/")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = op["value"]


def extract(root: Path, repository: str, tag: str, path: str, patches: list[str]) -> dict[str, Any]:
    mirror = root / repository.replace("/", "+") / "repo"
    commit = git(mirror, "rev-parse", f"{tag}^{{commit}}").strip()
    crd = yaml.safe_load(git(mirror, "show", f"{tag}:{path}"))
    for patch in patches:
        apply_adds(crd, yaml.safe_load(git(mirror, "show", f"{tag}:{patch}")))
    spec = crd["spec"]
    return {
        "source": {"repository": repository, "tag": tag, "commit": commit, "path": path, "patches": patches},
        "group": spec["group"],
        "kind": spec["names"]["kind"],
        "scope": spec["scope"],
        "versions": {
            version["name"]: without_prose(version["schema"]["openAPIV3Schema"])
            for version in spec["versions"]
            if version.get("served", True)
        },
        "name": crd["metadata"]["name"],
    }


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/.mirror")
    for repository, tag, path, patches in SOURCES:
        found = extract(root, repository, tag, path, patches)
        target = HERE / f"{found.pop('name')}.json"
        target.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"{target.name}: {repository}@{tag} {path}")


if __name__ == "__main__":
    main()
