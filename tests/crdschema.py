"""Custom resources checked offline against the CRDs vendored in tests/data/crds (README.md there).

A CRD's openAPIV3Schema becomes JSON Schema that refuses a field the CRD does not have (what
`kubectl apply` refuses by default), and the configs decoded by Go programs are checked against
schemas written from their Go types.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with kubernetes-validate")

K8S = REPO / "configs" / "k8s"
CRDS = REPO / "tests" / "data" / "crds"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

Doc = dict[str, Any]


def strict(node: Any) -> Any:
    """A CRD's structural schema as JSON Schema that refuses the fields the CRD does not have."""
    if not isinstance(node, dict):
        return node
    out: Doc = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict(sub) for sub in value]
        elif not key.startswith("x-kubernetes-") and key != "nullable":
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@functools.cache
def crd_schemas() -> dict[tuple[str, str], Doc]:
    """(apiVersion, kind) -> the strict schema of that version, from every vendored CRD."""
    found = {}
    for path in sorted(CRDS.glob("*.json")):
        crd = json.loads(path.read_text())
        if "versions" in crd:
            for version, schema in crd["versions"].items():
                found[(f"{crd['group']}/{version}", crd["kind"])] = strict(schema)
    return found


def go_schema(name: str) -> Doc:
    return dict(json.loads((CRDS / name).read_text())["schema"])


def problems(schema: Doc, document: Any, *, openapi: bool = True) -> list[str]:
    """Every way the document breaks the schema, one line each (CRDs are OpenAPI 3.0: draft 4)."""
    kind = jsonschema.Draft4Validator if openapi else jsonschema.Draft202012Validator
    errors = kind(schema, format_checker=FORMATS).iter_errors(document)
    return sorted(f"{'.'.join(str(p) for p in error.absolute_path) or '<top>'}: {error.message}" for error in errors)


def crd_problems(doc: Doc) -> list[str]:
    found = problems(crd_schemas()[(doc["apiVersion"], doc["kind"])], doc)
    meta = doc.get("metadata", {})
    found += [f"metadata.{key}: not checked here" for key in set(meta) - {"name", "namespace", "labels", "annotations"}]
    if not DNS_SUBDOMAIN.fullmatch(str(meta.get("name", ""))):
        found.append(f"metadata.name: {meta.get('name')!r} is not a DNS subdomain")
    for field in ("labels", "annotations"):
        found += [
            f"metadata.{field}.{k}: not a string" for k, v in meta.get(field, {}).items() if not isinstance(v, str)
        ]
    return found


@functools.cache
def documents(folder: Path = K8S) -> list[tuple[Path, Doc]]:
    """Every object of the folder's YAML files, recursively (shared: copy one before changing it)."""
    found = []
    for path in sorted(folder.rglob("*.yaml")):
        with path.open() as handle:
            found += [(path, doc) for doc in yaml.safe_load_all(handle) if doc is not None]
    return found
