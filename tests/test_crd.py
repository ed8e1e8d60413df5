"""The generated CRD: in sync with the models, structural, and rejecting what the models reject.

The API server is not available to unit tests, so its two validation steps are reproduced offline:
defaulting + OpenAPI validation (jsonschema, Draft 4 semantics as in OpenAPI v3.0) and the CEL rules
(cel-python). e2e applies the same table to a real API server.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from leadtime.api import parse_model_deployment
from leadtime.api.cli import generated_files
from leadtime.api.crd import CRD_FILENAME, build_crd
from leadtime.api.testing import load_invalid_specs
from leadtime.cli import main

ROOT = Path(__file__).resolve().parents[1]
INVALID_SPECS = load_invalid_specs(ROOT / "tests" / "data" / "invalid_specs.yaml")
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CRD = build_crd()
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]

# What a structural schema node may contain (apiextensions.k8s.io/v1 JSONSchemaProps we use).
ALLOWED_KEYS = {
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
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "anyOf",
}


@pytest.mark.parametrize("path", sorted(generated_files(ROOT)), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_file_matches_the_models(path):
    expected = generated_files(ROOT)[path]
    assert path.exists(), f"{path.relative_to(ROOT)} missing: run `leadtime crds`"
    assert path.read_text() == expected, f"{path.relative_to(ROOT)} is stale: run `leadtime crds`"


def test_chart_crd_is_identical_to_crds_dir():
    assert (ROOT / "charts" / "leadtime" / "crds" / CRD_FILENAME).read_bytes() == (
        ROOT / "crds" / CRD_FILENAME
    ).read_bytes()


def test_crds_check_fails_on_a_stale_file(tmp_path, capsys):
    (tmp_path / "operator" / "leadtime").mkdir(parents=True)
    assert main(["crds", "--root", str(tmp_path), "--check"]) == 2
    assert "out of date" in capsys.readouterr().err
    assert main(["crds", "--root", str(tmp_path)]) == 0
    assert main(["crds", "--root", str(tmp_path), "--check"]) == 0


def _walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural():
    for path, node in _walk(SCHEMA):
        assert set(node) <= ALLOWED_KEYS, f"{path}: unexpected {set(node) - ALLOWED_KEYS}"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path}: untyped"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), f"{path}: anyOf only for int-or-string"
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
        assert node.get("default", "absent") is not None, f"{path}: default null"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties", {}) is not False, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node:
                assert node[bound] is True and ("minimum" if "Min" in bound else "maximum") in node, path
        if node.get("type") == "object" and "properties" in node:
            assert set(node.get("required", ())) <= set(node["properties"]), path


def test_integers_and_numbers_are_typed_right():
    spec = SCHEMA["properties"]["spec"]["properties"]
    assert spec["model"]["properties"]["gpus"]["type"] == "integer"
    assert spec["replicas"]["properties"]["warmFloor"]["type"] == "integer"
    assert spec["slo"]["properties"]["p95Seconds"]["type"] == "number"
    assert spec["pools"]["properties"]["interactive"]["properties"]["pricePerGpuHour"]["type"] == "number"


def test_crd_names_columns_and_subresources():
    assert CRD["metadata"]["name"] == "modeldeployments.serving.leadtime.dev"
    assert CRD["spec"]["scope"] == "Namespaced"
    assert CRD["spec"]["names"]["shortNames"] == ["md"]
    assert "leadtime" in CRD["spec"]["names"]["categories"]
    assert VERSION["subresources"] == {"status": {}}
    columns = {c["name"].upper(): c["jsonPath"] for c in VERSION["additionalPrinterColumns"]}
    assert columns == {
        "READY": ".status.readyReplicas",
        "DESIRED": ".status.desiredReplicas",
        "FLOOR": ".spec.replicas.warmFloor",
        "QUEUE": ".status.observation.queueDepth",
        "P95": ".status.observation.p95LatencySeconds",
        "$/H": ".status.cost.dollarsPerHour",
        "MODE": ".spec.mode",
        "AGE": ".metadata.creationTimestamp",
    }
    for column in VERSION["additionalPrinterColumns"]:
        node = SCHEMA
        for part in column["jsonPath"].strip(".").split("."):
            node = node["properties"][part] if part != "metadata" else {"type": "string"}
            if part == "metadata":
                break


def test_descriptions_come_from_docstrings():
    spec = SCHEMA["properties"]["spec"]
    assert spec["properties"]["replicas"]["properties"]["warmFloor"]["description"].startswith(
        "Replicas kept warm"
    )
    undocumented = [
        path
        for path, node in _walk(SCHEMA["properties"]["spec"])
        if not node.get("description") and not path.endswith("{}") and not path.endswith("[]")
    ]
    assert undocumented == []


def test_every_cel_message_names_a_field_and_has_a_field_path():
    rules = [
        (path, rule) for path, node in _walk(SCHEMA) for rule in node.get("x-kubernetes-validations", ())
    ]
    assert len(rules) >= 6
    for path, rule in rules:
        assert rule["fieldPath"].startswith("."), path
        assert any(word in rule["message"] for word in ("replicas.", "pools.", "model.", "drain.")), rule["message"]


# --- the API server's validation, offline


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Structural defaulting as the API server does it: absent fields get their default, recursively."""
    if isinstance(obj, dict) and "properties" in schema:
        for name, prop in schema["properties"].items():
            if name not in obj and "default" in prop:
                obj[name] = copy.deepcopy(prop["default"])
            if name in obj:
                obj[name] = apply_defaults(prop, obj[name])
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key in obj:
            obj[key] = apply_defaults(schema["additionalProperties"], obj[key])
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        obj = [apply_defaults(schema["items"], item) for item in obj]
    return obj


def cel_failures(schema: dict[str, Any], obj: Any, path: str) -> list[tuple[str, str]]:
    celpy = pytest.importorskip("celpy")
    failures = []
    if isinstance(obj, dict) and "properties" in schema:
        for name, prop in schema["properties"].items():
            if name in obj:
                failures += cel_failures(prop, obj[name], f"{path}.{name}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            failures += cel_failures(schema["items"], item, f"{path}[{i}]")
    for rule in schema.get("x-kubernetes-validations", ()):
        env = celpy.Environment()
        program = env.program(env.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(obj)}):
            failures.append((path + rule["fieldPath"], rule["message"]))
    return failures


def apiserver_errors(obj: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Field paths the OpenAPI schema and the CEL rules reject, in the API server's notation."""
    obj = apply_defaults(SCHEMA, copy.deepcopy(obj))
    schema_errors = []
    for error in jsonschema.Draft4Validator(SCHEMA).iter_errors(obj):
        path = ""
        for part in error.absolute_path:
            path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + part
        if error.validator == "required":
            path += ("." if path else "") + error.message.split("'")[1]
        schema_errors.append(path)
    # The API server runs CEL only on objects that passed the schema.
    cel_errors = [] if schema_errors else [p for p, _ in cel_failures(SCHEMA, obj["spec"] and obj, "")]
    return schema_errors, [p.lstrip(".") for p in cel_errors]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_schema_and_cel(example):
    assert apiserver_errors(yaml.safe_load(example.read_text())) == ([], [])


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.name)
def test_invalid_spec_is_rejected_by_the_crd(case):
    schema_errors, cel_errors = apiserver_errors(case.object)
    if case.by == "schema":
        assert case.field in schema_errors
    else:
        assert schema_errors == []
        assert case.field in cel_errors


DRAIN_CASES = [
    ({"terminationGracePeriodSeconds": -1}, "schema", "spec.drain.terminationGracePeriodSeconds"),
    ({"terminationGracePeriodSeconds": 3601}, "schema", "spec.drain.terminationGracePeriodSeconds"),
    ({"terminationGracePeriodSeconds": "10m"}, "schema", "spec.drain.terminationGracePeriodSeconds"),
    ({"preStopSleepSeconds": -5}, "schema", "spec.drain.preStopSleepSeconds"),
    ({"terminationGracePeriodSeconds": 5, "preStopSleepSeconds": 10}, "cel", "spec.drain.preStopSleepSeconds"),
    # The default grace period (600 s) is what a longer preStop is checked against.
    ({"preStopSleepSeconds": 601}, "cel", "spec.drain.preStopSleepSeconds"),
]


@pytest.mark.parametrize(("drain", "by", "field"), DRAIN_CASES)
def test_bad_drain_settings_are_rejected_by_the_crd_naming_the_field(drain, by, field):
    obj = {"apiVersion": "serving.leadtime.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "m"},
           "spec": {"model": {"image": "img"}, "drain": drain}}
    schema_errors, cel_errors = apiserver_errors(obj)
    assert field in (schema_errors if by == "schema" else cel_errors)
    with pytest.raises(Exception, match=field.replace(".", r"\.")):
        parse_model_deployment(obj)


@pytest.mark.parametrize("example", EXAMPLES + [None], ids=lambda p: p.name if p else "minimal")
def test_apiserver_defaults_equal_the_models_defaults(example):
    obj = (
        yaml.safe_load(example.read_text())
        if example
        else {
            "apiVersion": "serving.leadtime.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "m"},
            "spec": {"model": {"image": "img"}},
        }
    )
    defaulted = apply_defaults(SCHEMA, copy.deepcopy(obj))
    parsed = parse_model_deployment(obj).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert defaulted["spec"] == parsed["spec"]
