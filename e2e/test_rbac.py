"""Least privilege, enforced by the API server: the operator runs as a process authenticated only by a
token of the chart's ServiceAccount, so every request it makes is authorised by the chart's RBAC.
A ModelDeployment scenario passes under it; reading Secrets, deleting Nodes and (namespaced mode)
touching another namespace are refused, both by `kubectl auth can-i` and by real requests."""

from __future__ import annotations

import time

import pytest
from chart_install import (
    CHART,
    MODEL_LABEL,
    as_sa,
    can_i,
    chart_operator,
    install,
    liveness_ok,
    manifests,
    operator_container,
    release_args,
    release_model_deployments,
    service_account,
    token_kubeconfig,
    uninstall,
)
from harness import is_ready
from operator_process import apply, conditions, deployment_replicas, fast, get_md, install_crds, load_example

pytestmark = pytest.mark.e2e

NODE = "gpu-od-0"


@pytest.fixture(scope="module")
def crds(cluster):
    install_crds(cluster)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))


@pytest.fixture
def more_namespaces(cluster, request):
    """Extra namespaces for one test (the workloads' and an unrelated one), deleted afterwards."""
    created: list[str] = []

    def make(suffix: str) -> str:
        created.append(cluster.create_namespace(f"{request.node.name[:30]}-{suffix}"))
        return created[-1]

    yield make
    for name in created:
        release_model_deployments(cluster, name)
        cluster.delete_namespace(name)


def assert_forbidden(proc, what: str) -> None:
    assert proc.returncode != 0, f"{what} was allowed:\n{proc.stdout}"
    assert "Forbidden" in proc.stderr or "forbidden" in proc.stderr, f"{what}: {proc.stderr}"


def run_scenario(cluster, docs, kubeconfig, md_namespace, tmp_path, *, replace_args=None):
    """Apply the llama-8b example; the operator (as the ServiceAccount) must bring it to its warm floor."""
    process = chart_operator(cluster, docs, kubeconfig, tmp_path / "operator.log", pod_name="leadtime-rbac-0")
    if replace_args:
        process.args = replace_args(process.args)
    process.start()
    try:
        cluster.wait_for(lambda: liveness_ok(process) or not process.alive(), 30, "the operator's /healthz")
        assert process.alive(), process.log()[-3000:]
        started = time.monotonic()
        md = fast(load_example("llama-8b.yaml"), cold_start="2s", interval_s=1)
        apply(cluster, md_namespace, md)

        def at_floor():
            obj = get_md(cluster, md_namespace, "llama-8b")
            status = obj.get("status") or {}
            ready = [p for p in cluster.pods(md_namespace, f"{MODEL_LABEL}=llama-8b")
                     if p.metadata.deletion_timestamp is None and is_ready(p)]
            return obj if (len(ready) == 1 and status.get("readyReplicas") == 1
                           and status.get("observedGeneration") == obj["metadata"]["generation"]) else None

        obj = cluster.wait_for(at_floor, 60, "llama-8b at its warm floor with status", md_namespace)
        print(f"scenario under the chart's ServiceAccount: warm floor in status after {time.monotonic() - started:.1f}s")
        assert deployment_replicas(cluster, md_namespace, "llama-8b") == 1
        cluster.core.read_namespaced_service("llama-8b", md_namespace)
        conds = conditions(obj)
        assert set(conds) == {"Ready", "MetricsAvailable", "Scaling", "Degraded"}
        assert conds["Ready"]["status"] == "True"
        assert obj["status"]["lastDecision"]["reason"]
        log = process.log()
        # Anything the chart forgot shows up as a 403 somewhere in kopf's or leadtime's requests.
        assert "Forbidden" not in log and "403" not in log, log[-4000:]

        # Deletion goes through the operator too (its finalizer), so it runs under the same RBAC.
        cluster.kubectl("delete", "md", "llama-8b", "-n", md_namespace, "--wait=false")

        def deleted():
            left = cluster.kubectl("get", "md,deployments,services", "-n", md_namespace, "-o", "name").stdout
            return not left.strip()

        cluster.wait_for(deleted, 30, "llama-8b and its children to be deleted", md_namespace)
        log = process.log()
        assert "Forbidden" not in log and "403" not in log, log[-4000:]
    finally:
        process.stop()
        print("--- operator log (tail)\n" + "\n".join(process.log().splitlines()[-25:]))


def test_namespaced_mode_operator_works_under_the_chart_rbac_and_nothing_more(
    cluster, namespace, more_namespaces, crds, tmp_path
):
    workloads, elsewhere = more_namespaces("md"), more_namespaces("other")
    release = namespace
    install(cluster, release, namespace,
            *release_args(release, watch_namespaces=[workloads],
                          sets=(f"prometheusUrl={cluster.prometheus_url}",)))
    try:
        docs = manifests(cluster, release, namespace)
        kubeconfig = token_kubeconfig(cluster, service_account(docs), namespace, tmp_path / "sa.kubeconfig")

        run_scenario(cluster, docs, kubeconfig, workloads, tmp_path)

        # What it must not do, first as the API server's verdict, then as real requests.
        assert not can_i(cluster, kubeconfig, "get", "secrets", "-n", workloads)
        assert not can_i(cluster, kubeconfig, "delete", "nodes")
        assert not can_i(cluster, kubeconfig, "create", "deployments", "-n", elsewhere)
        assert not can_i(cluster, kubeconfig, "list", "modeldeployments.serving.leadtime.dev", "--all-namespaces")
        assert can_i(cluster, kubeconfig, "create", "deployments", "-n", workloads)  # the check itself works

        assert_forbidden(as_sa(cluster, kubeconfig, "get", "secrets", "-n", workloads), "reading Secrets")
        # Authorisation comes before dry-run: a server-side dry-run delete is refused exactly like a real one,
        # and cannot remove a node of the shared cluster if the chart were wrong.
        assert_forbidden(as_sa(cluster, kubeconfig, "delete", "node", NODE, "--dry-run=server"), "deleting a Node")
        assert_forbidden(as_sa(cluster, kubeconfig, "create", "deployment", "intruder", "-n", elsewhere,
                               "--image=leadtime.dev/placeholder:e2e"), f"creating a Deployment in {elsewhere}")
        assert_forbidden(as_sa(cluster, kubeconfig, "get", "modeldeployments.serving.leadtime.dev", "-A"),
                         "listing ModelDeployments cluster-wide")
        assert cluster.apps.list_namespaced_deployment(elsewhere).items == []
    finally:
        uninstall(cluster, release, namespace)


def test_cluster_wide_mode_grants_the_watches_and_refuses_secrets_and_nodes(
    cluster, namespace, more_namespaces, crds, tmp_path
):
    workloads = more_namespaces("md")
    release = namespace
    install(cluster, release, namespace, *release_args(release, sets=(f"prometheusUrl={cluster.prometheus_url}",)))
    try:
        docs = manifests(cluster, release, namespace)
        kubeconfig = token_kubeconfig(cluster, service_account(docs), namespace, tmp_path / "sa.kubeconfig")

        # A cluster-wide operator on a cluster that other test sessions share would reconcile their
        # ModelDeployments too. So the scenario runs the chart's arguments restricted to one namespace,
        # standalone (namespaced peering objects are not part of the cluster-wide role), and the
        # cluster-wide requests kopf makes in --all-namespaces mode are made here directly.
        chart_args = operator_container(docs)["args"]
        assert "--all-namespaces" in chart_args and any(a.startswith("--peering=") for a in chart_args)

        def one_namespace(args):
            kept = [a for a in args if a != "--all-namespaces" and not a.startswith("--peering=")]
            return [*kept, f"--namespace={workloads}", "--standalone"]

        run_scenario(cluster, docs, kubeconfig, workloads, tmp_path, replace_args=one_namespace)

        for path in ("/api/v1/namespaces", "/apis/serving.leadtime.dev/v1alpha1/modeldeployments",
                     "/apis/apps/v1/deployments", "/api/v1/pods",
                     "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "/apis/kopf.dev/v1/clusterkopfpeerings"):
            proc = as_sa(cluster, kubeconfig, "get", "--raw", f"{path}?watch=1&timeoutSeconds=1")
            assert proc.returncode == 0, f"watch {path}: {proc.stderr}"
        proc = as_sa(cluster, kubeconfig, "patch", "clusterkopfpeering", release, "--type=merge",
                     "-p", '{"status": {"e2e-probe": null}}')
        assert proc.returncode == 0, proc.stderr

        assert not can_i(cluster, kubeconfig, "get", "secrets", "--all-namespaces")
        assert not can_i(cluster, kubeconfig, "delete", "nodes")
        assert not can_i(cluster, kubeconfig, "create", "pods", "-n", workloads)
        assert_forbidden(as_sa(cluster, kubeconfig, "get", "secrets", "-n", workloads), "reading Secrets")
        assert_forbidden(as_sa(cluster, kubeconfig, "get", "secrets", "-A"), "listing Secrets cluster-wide")
        assert_forbidden(as_sa(cluster, kubeconfig, "delete", "node", NODE, "--dry-run=server"), "deleting a Node")
        assert_forbidden(as_sa(cluster, kubeconfig, "create", "clusterrolebinding", "escalate",
                               "--clusterrole=cluster-admin", f"--serviceaccount={namespace}:x", "--dry-run=server"),
                         "binding cluster-admin")
    finally:
        uninstall(cluster, release, namespace)
