"""Generate the ModelDeployment CustomResourceDefinition from the pydantic models.

Kubernetes wants a *structural* OpenAPI v3 schema: every node typed, no `$ref`, no `anyOf` with null
(optional fields are `nullable`), boolean `exclusiveMinimum`, `additionalProperties` only for maps.
pydantic emits JSON Schema 2020-12; `structural()` rewrites it.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from .models import GROUP, KIND, PLURAL, VERSION, ModelDeploymentSpec, ModelDeploymentStatus

CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILENAME = f"{GROUP}_{PLURAL}.yaml"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "integer",
        "jsonPath": ".status.readyReplicas",
        "description": "Ready interactive replicas",
    },
    {
        "name": "Desired",
        "type": "integer",
        "jsonPath": ".status.desiredReplicas",
        "description": "Desired interactive replicas",
    },
    {"name": "Floor", "type": "integer", "jsonPath": ".spec.replicas.warmFloor", "description": "Warm floor"},
    {
        "name": "Queue",
        "type": "number",
        "jsonPath": ".status.observation.queueDepth",
        "description": "Interactive requests waiting",
    },
    {
        "name": "P95",
        "type": "number",
        "jsonPath": ".status.observation.p95LatencySeconds",
        "description": "p95 latency over the metrics window, seconds",
    },
    {
        "name": "$/h",
        "type": "number",
        "jsonPath": ".status.cost.dollarsPerHour",
        "description": "Current GPU spend, dollars per hour",
    },
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "description": "active or shadow"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# Keys pydantic emits that have no place in a Kubernetes schema.
_DROPPED_KEYS = {"title", "$defs", "$schema", "examples"}


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rewrite a pydantic JSON Schema node into a structural Kubernetes OpenAPI v3 schema node."""
    defs = schema.get("$defs", {}) if defs is None else defs
    node = dict(schema)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        # Field-level keys (description, default) win over the referenced model's.
        node = {**target, **node}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = node.pop("anyOf")
        non_null = [b for b in branches if b.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express anyOf {branches} structurally")
        inner = structural(non_null[0], defs)
        node = {**inner, **{k: v for k, v in node.items() if k != "default" or v is not None}}
        if len(non_null) < len(branches):
            node["nullable"] = True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020-12 gives the bound; OpenAPI v3.0 (Kubernetes) a flag beside minimum.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: structural(prop, defs) for name, prop in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs)
            elif value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            # `false` (extra="forbid") is the default for structural schemas and may not sit
            # beside `properties`.
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("required", [])
        if not out["required"]:
            del out["required"]
    _default_nested_objects(out)
    return _ordered(out)


# Reading order in the YAML: what a node is, then what it holds, then its constraints.
_KEY_ORDER = (
    "type",
    "description",
    "format",
    "enum",
    "default",
    "nullable",
    "properties",
    "required",
    "items",
    "additionalProperties",
)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    return dict(sorted(node.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def _default_nested_objects(node: dict[str, Any]) -> None:
    # An absent optional object gets a default, so the apiserver fills in the defaults inside it and
    # stored objects look like what parse_model_deployment returns. The default is spelled out in
    # full rather than `{}`: the apiserver checks each default against the CEL rules as written,
    # without first applying the nested defaults. Not for objects with required fields nor nullable
    # ones (status: absent means unknown).
    required = set(node.get("required", ()))
    for name, prop in node.get("properties", {}).items():
        if (
            name not in required
            and prop.get("type") == "object"
            and "properties" in prop
            and "default" not in prop
            and not prop.get("nullable")
            and not prop.get("required")
        ):
            prop["default"] = _filled({}, prop)


def _filled(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`obj` with the schema's defaults applied, as the apiserver does."""
    out = dict(obj)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = copy.deepcopy(prop["default"])
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one pydantic model (camelCase field names)."""
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def open_api_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the ModelDeployment CRD."""
    spec = model_schema(ModelDeploymentSpec)
    status = model_schema(ModelDeploymentStatus)
    return {
        "type": "object",
        "description": _root_description(),
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
    }


def _root_description() -> str:
    from .models import ModelDeployment

    return (ModelDeployment.__doc__ or "").strip()


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["md"],
                "categories": ["leadtime"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": open_api_schema()},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)

HEADER = "# Generated by `leadtime crds` from operator/leadtime/api/models.py. Do not edit.\n"


def render_crd_yaml() -> str:
    """The CRD as the YAML committed in crds/ and charts/leadtime/crds/."""
    body = yaml.dump(build_crd(), Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return HEADER + "---\n" + body
