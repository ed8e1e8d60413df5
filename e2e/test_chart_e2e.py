"""The Helm chart against the real API server: every ci/*-values.yaml rendering passes server-side
dry-run (schemas, defaulting, admission, the "restricted" Pod Security level), and `helm install`
brings up an available operator Deployment that `helm uninstall` removes again."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import yaml
from chart_install import CHART, CI_VALUES, install, manifests, release_args, render, uninstall

pytestmark = pytest.mark.e2e

MONITORING_GROUP = "monitoring.coreos.com"


@pytest.fixture(scope="module")
def chart_crds(cluster):
    """The chart's own CRDs (ModelDeployment and kopf's peerings), applied first as Helm would."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    for crd in yaml.safe_load_all("\n---\n".join(p.read_text() for p in (CHART / "crds").glob("*.yaml"))):
        if crd:
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")


def restricted(cluster, namespace: str) -> None:
    """Have the API server enforce (and warn about) the "restricted" Pod Security Standard here."""
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/warn=restricted", "--overwrite")


def serves(cluster, group: str) -> bool:
    return group in cluster.kubectl("api-versions").stdout


def check_rules_with_promtool(docs: list[dict], tmp_path) -> None:
    """Without the prometheus-operator CRDs the server cannot check a PrometheusRule; promtool can."""
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    if not rules:
        return
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not installed: PrometheusRule expressions not checked")
        return
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name.removesuffix("-values.yaml") for p in CI_VALUES])
def test_rendered_manifests_pass_server_side_dry_run(cluster, namespace, chart_crds, values, tmp_path):
    restricted(cluster, namespace)
    # Namespaced mode names team-a/team-b, which do not exist here: point it at the test namespace.
    watch = [namespace] if yaml.safe_load(values.read_text()).get("watchNamespaces") else None
    docs = [d for d in yaml.safe_load_all(render(cluster, namespace, namespace,
                                                 *release_args(namespace, values=values, watch_namespaces=watch)))
            if d]
    assert any(d["kind"] == "Deployment" for d in docs)

    monitoring = [d for d in docs if d["apiVersion"].startswith(MONITORING_GROUP + "/")]
    if monitoring and not serves(cluster, MONITORING_GROUP):
        print(f"{values.name}: {[d['kind'] for d in monitoring]} not dry-run (no prometheus-operator CRDs here)")
        check_rules_with_promtool(monitoring, tmp_path)
        docs = [d for d in docs if d not in monitoring]

    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                           input=yaml.safe_dump_all(docs))
    assert proc.returncode == 0, proc.stderr
    accepted = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), proc.stdout
    # The Deployment's pod template is checked against "restricted" by the PodSecurity admission plugin.
    assert "would violate PodSecurity" not in proc.stderr, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


def test_helm_install_makes_the_operator_available_and_uninstall_removes_it(cluster, namespace, chart_crds):
    restricted(cluster, namespace)
    release = namespace
    started = time.monotonic()
    install(cluster, release, namespace,
            *release_args(release, sets=(f"prometheusUrl={cluster.prometheus_url or 'http://127.0.0.1:9090'}",)))
    installed_s = time.monotonic() - started
    docs = manifests(cluster, release, namespace)

    deployment = cluster.apps.read_namespaced_deployment(f"{release}-leadtime", namespace)
    assert deployment.status.available_replicas == deployment.spec.replicas == 2
    # Under enforce=restricted the API server only admits the pods if the securityContext is compliant.
    pods = cluster.pods(namespace, f"app.kubernetes.io/instance={release}")
    assert len([p for p in pods if p.metadata.deletion_timestamp is None]) == 2
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    cluster_scoped = [("clusterrole", f"{release}-leadtime"), ("clusterrolebinding", f"{release}-leadtime"),
                      ("clusterkopfpeering", release)]
    for kind, name in cluster_scoped:
        cluster.kubectl("get", kind, name)
    assert ("ServiceAccount", f"{release}-leadtime") in kinds

    started = time.monotonic()
    uninstall(cluster, release, namespace)

    def gone():
        left = []
        for kind, name in [*cluster_scoped, *((d["kind"].lower(), d["metadata"]["name"]) for d in docs)]:
            args = ["get", kind, name, "--ignore-not-found", "-o", "name"]
            if kind not in ("clusterrole", "clusterrolebinding", "clusterkopfpeering"):
                args += ["-n", namespace]
            left += cluster.kubectl(*args).stdout.split()
        return not left and not [p for p in cluster.pods(namespace) if p.metadata.deletion_timestamp is None]

    cluster.wait_for(gone, 60, "every object of the release to be deleted", namespace)
    print(f"helm install (available): {installed_s:.1f}s, helm uninstall (all gone): "
          f"{time.monotonic() - started:.1f}s")
    # Helm never deletes CRDs: the ModelDeployments of users survive an uninstall.
    cluster.kubectl("get", "crd", "modeldeployments.serving.leadtime.dev")
