"""The Helm chart: documented values, schema, CRD copies, and (with helm) lint and render checks."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "leadtime"
VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
INSTALL_DOC = ROOT / "docs" / "install.md"

# `# name -- what it does` comments, possibly continued on following comment lines.
DOC_COMMENT = re.compile(r"^\s*# ([A-Za-z0-9_.]+) -- (.*)$")


def documented_values() -> dict[str, str]:
    """Value path -> its description, from the comments in values.yaml."""
    docs: dict[str, str] = {}
    current = None
    for line in VALUES_TEXT.splitlines():
        match = DOC_COMMENT.match(line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current and line.strip().startswith("# ") and not line.strip().startswith("# ---"):
            docs[current] += " " + line.strip()[2:].strip()
        else:
            current = None
    return docs


def values_table() -> str:
    """The values reference in docs/install.md, rendered from values.yaml."""
    rows = ["| Value | Default | Description |", "| --- | --- | --- |"]
    for path, description in documented_values().items():
        default = VALUES
        for part in path.split("."):
            default = default[part]
        rendered = json.dumps(default)
        if len(rendered) > 50:
            rendered = "see values.yaml"
        rows.append(f"| `{path}` | `{rendered}` | {description.replace('|', '/')} |")
    return "\n".join(rows)


def merged(base: dict, override: dict | None) -> dict:
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = (
            merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return out


def test_every_value_is_documented_by_a_comment_starting_with_its_name():
    documented = documented_values()

    def walk(node: dict, prefix: str) -> list[str]:
        missing = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in documented:
                continue
            if isinstance(value, dict) and value:
                missing += walk(value, path + ".")
            else:
                missing.append(path)
        return missing

    assert walk(VALUES, "") == []
    for path in documented:
        node = VALUES
        for part in path.split("."):
            assert part in node, f"comment for {path}, which is not a value"
            node = node[part]


def test_values_are_camel_case():
    def keys(node):
        for key, value in node.items():
            yield key
            if isinstance(value, dict):
                yield from keys(value)

    # Maps that hold Kubernetes field names or labels, not chart values.
    free = {"podSecurityContext", "securityContext", "resources", "labels", "annotations"}
    stack = [VALUES]
    while stack:
        node = stack.pop()
        for key, value in node.items():
            assert re.fullmatch(r"[a-z][A-Za-z0-9]*", key), key
            if isinstance(value, dict) and key not in free:
                stack.append(value)


@pytest.mark.parametrize("values_file", [None, *CI_FILES], ids=lambda p: p.name if p else "values.yaml")
def test_values_satisfy_the_schema(values_file):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    override = yaml.safe_load(values_file.read_text()) if values_file else {}
    jsonschema.validate(merged(VALUES, override), SCHEMA)


@pytest.mark.parametrize(
    "bad",
    [
        {"replicaCount": 0},
        {"logLevel": "trace"},
        {"watchNamespaces": ["Not_A_Namespace"]},
        {"prometheusUrl": "prometheus:9090"},
        {"rbac": {"create": "yes"}},
        {"unknownValue": 1},
    ],
)
def test_schema_rejects_bad_values(bad):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merged(VALUES, bad), SCHEMA)


def test_install_doc_values_reference_is_in_sync():
    assert values_table() in INSTALL_DOC.read_text(), (
        "docs/install.md's values table differs from values.yaml; paste tests.test_chart.values_table()"
    )


def test_chart_crds_are_identical_to_crds_dir():
    ours = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert chart == ours
    assert "kopf.dev_peerings.yaml" in ours


def test_chart_version_and_app_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "leadtime"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject


# --- with helm


def find_helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    candidates = sorted(glob.glob(os.path.expanduser("~/.cache/leadtime/k8s-*/bin/helm")))
    return candidates[-1] if candidates else None


HELM = find_helm()
# Rendering as for a current cluster; a source-built helm otherwise assumes an old default version.
KUBE_VERSION = ("--kube-version", "1.36.0")
needs_helm = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup builds it)")


def helm(*args: str) -> str:
    result = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def render(values_file: Path | None, *extra: str) -> list[dict]:
    args = ["template", "lt", str(CHART), "--namespace", "leadtime-system", *KUBE_VERSION, *extra]
    if values_file:
        args += ["-f", str(values_file)]
    return [doc for doc in yaml.safe_load_all(helm(*args)) if doc]


@needs_helm
@pytest.mark.parametrize("values_file", CI_FILES, ids=lambda p: p.name)
def test_helm_lint(values_file):
    helm("lint", "--strict", str(CHART), *KUBE_VERSION, "-f", str(values_file))


@needs_helm
@pytest.mark.parametrize("values_file", CI_FILES, ids=lambda p: p.name)
def test_helm_template_renders_secure_pods(values_file):
    docs = render(values_file)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"][0] == "run"
    assert any(a.startswith("--peering=") for a in container["args"])
    assert any(a.startswith("--liveness=http://0.0.0.0:") for a in container["args"])


def rbac_rules(docs: list[dict]) -> list[dict]:
    return [rule for d in docs if d["kind"] in ("ClusterRole", "Role") for rule in d["rules"]]


@needs_helm
@pytest.mark.parametrize("values_file", CI_FILES, ids=lambda p: p.name)
def test_rbac_is_least_privilege(values_file):
    for rule in rbac_rules(render(values_file)):
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "secrets" not in rule["resources"], rule
        if "nodes" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        # Pods are the ReplicaSets' to create and delete; leadtime only reads and annotates them.
        if "pods" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch", "patch"}, rule
        if "replicasets" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


@needs_helm
def test_cluster_wide_mode_grants_what_kopf_and_the_operator_need():
    docs = render(None)
    kinds = [d["kind"] for d in docs]
    assert "Role" not in kinds and "ClusterKopfPeering" in kinds
    granted = {
        (group, resource, verb)
        for rule in rbac_rules(docs)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for needed in [
        ("serving.leadtime.dev", "modeldeployments", "watch"),
        ("serving.leadtime.dev", "modeldeployments/status", "patch"),
        ("apps", "deployments", "create"),
        ("apps", "deployments/scale", "patch"),
        ("", "services", "delete"),
        ("", "pods", "list"),
        ("", "pods", "patch"),
        ("apps", "replicasets", "list"),
        ("", "events", "create"),
        ("kopf.dev", "clusterkopfpeerings", "patch"),
        ("", "namespaces", "watch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ]:
        assert needed in granted, needed
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "--all-namespaces" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


@needs_helm
def test_namespaced_mode_grants_only_the_listed_namespaces():
    docs = render(CHART / "ci" / "namespaced-values.yaml")
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "KopfPeering") == [
        "team-a",
        "team-b",
    ]
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert [r["resources"] for r in cluster_role["rules"]] == [["customresourcedefinitions"], ["namespaces"]]
    assert cluster_role["rules"][1]["verbs"] == ["list", "watch"]
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert "--namespace=team-a" in args and "--all-namespaces" not in args
    assert any(d["kind"] == "NetworkPolicy" for d in docs)


@needs_helm
def test_no_rbac_mode_creates_no_rbac_or_service_account():
    docs = render(CHART / "ci" / "no-rbac-values.yaml")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "leadtime-operator"


@needs_helm
def test_monitoring_objects_and_dashboard():
    docs = render(CHART / "ci" / "monitoring-values.yaml")
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {"LeadtimeMetricsUnavailable", "LeadtimeSloBreached", "LeadtimeSpendAboveBudget"}
    assert any(d["kind"] == "ServiceMonitor" for d in docs)
    dashboard = next(d for d in docs if d["kind"] == "ConfigMap")
    panels = json.loads(dashboard["data"]["leadtime.json"])["panels"]
    assert {p["title"] for p in panels} >= {"Demand (requests/s)", "Replicas per pool", "p95 latency vs SLO"}


@needs_helm
def test_one_resource_kind_per_template():
    for template in (CHART / "templates").glob("*.yaml"):
        out = helm(
            "template",
            "lt",
            str(CHART),
            *KUBE_VERSION,
            "--show-only",
            f"templates/{template.name}",
            "--set",
            "serviceMonitor.enabled=true,prometheusRule.enabled=true,networkPolicy.enabled=true",
            "--set",
            "watchNamespaces={a,b}" if template.name.startswith(("role", "peering")) else "nameOverride=",
        )
        kinds = {d["kind"] for d in yaml.safe_load_all(out) if d}
        assert len(kinds) == 1, (template.name, kinds)
