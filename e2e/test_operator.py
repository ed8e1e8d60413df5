"""The operator on a real control plane, as a process: children, warm floor, status, printer columns,
invalid specs, a SIGKILL mid scale-up, and deletion. None of these need the emulator."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from harness import is_ready
from leadtime.api.testing import load_invalid_specs
from operator_process import (
    GROUP,
    PLURAL,
    VERSION,
    apply,
    conditions,
    delete_model_deployments,
    deployment_replicas,
    events,
    fast,
    get_md,
    install_crds,
    load_example,
    operator_process,
    printer_table,
)

pytestmark = pytest.mark.e2e

INVALID_SPECS = load_invalid_specs(__import__("harness").REPO / "tests" / "data" / "invalid_specs.yaml")
MODEL_LABEL = "serving.leadtime.dev/model"


@pytest.fixture(scope="module")
def crds(cluster):
    install_crds(cluster)


@pytest.fixture
def operator(cluster, namespace, crds, tmp_path):
    process = operator_process(cluster, namespace, tmp_path).start()
    yield process
    delete_model_deployments(cluster, namespace)
    process.stop()
    print("--- operator log (tail)\n" + "\n".join(process.log().splitlines()[-60:]))


def ready_pods(cluster, namespace, selector):
    return [p for p in cluster.pods(namespace, selector) if p.metadata.deletion_timestamp is None and is_ready(p)]


def expected_floor(md):
    """The floor the spec asks for right now (schedule windows are UTC minutes)."""
    replicas = md["spec"]["replicas"]
    now = datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    floor = replicas.get("warmFloor", 1)
    for window in replicas.get("schedule", []):
        start = int(window["start"][:2]) * 60 + int(window["start"][3:])
        end = int(window["end"][:2]) * 60 + int(window["end"][3:])
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if inside:
            floor = max(floor, window["minReplicas"])
    return floor


def test_examples_apply_reach_the_warm_floor_and_fill_status_and_columns(cluster, namespace, operator):
    small, large = fast(load_example("llama-8b.yaml")), fast(load_example("llama-70b-batch.yaml"))
    for md in (small, large):
        apply(cluster, namespace, md)

    for md in (small, large):
        name, floor = md["metadata"]["name"], expected_floor(md)

        def at_floor(name=name, floor=floor):
            obj = get_md(cluster, namespace, name)
            status = obj.get("status") or {}
            ready = ready_pods(cluster, namespace, f"{MODEL_LABEL}={name},serving.leadtime.dev/pool=interactive")
            return obj if (len(ready) == floor and status.get("readyReplicas") == floor
                           and status.get("observedGeneration") == obj["metadata"]["generation"]) else None

        obj = cluster.wait_for(at_floor, 90, f"{name}: {floor} Ready replicas reported in status", namespace)
        status = obj["status"]
        assert deployment_replicas(cluster, namespace, name) == floor
        assert status["desiredReplicas"] == floor
        assert status["pools"]["interactive"]["ready"] == floor
        assert set(conditions(obj)) == {"Ready", "MetricsAvailable", "Scaling", "Degraded"}
        assert conditions(obj)["Ready"]["status"] == "True"
        assert status["lastDecision"]["reason"]
        gpus, price = md["spec"]["model"]["gpus"], md["spec"]["pools"]["interactive"]["pricePerGpuHour"]
        assert status["cost"]["dollarsPerHour"] == pytest.approx(floor * gpus * price)

    # The batch example owns a spot pool and an on-demand fallback pool, both idle without batch work.
    for child, selector in (("llama-70b-batch", "spot"), ("llama-70b-batch-ondemand", "on-demand")):
        deployment = cluster.apps.read_namespaced_deployment(child, namespace)
        assert deployment.spec.replicas == 0
        assert deployment.spec.template.spec.node_selector == {"leadtime.dev/capacity-type": selector}
        assert deployment.metadata.owner_references[0].kind == "ModelDeployment"
    services = {s.metadata.name for s in cluster.core.list_namespaced_service(namespace).items}
    assert services == {"llama-8b", "llama-70b", "llama-70b-batch"}

    table = cluster.kubectl("get", "md", "-n", namespace).stdout
    rows = {row["NAME"]: row for row in printer_table(table)}
    for column in ("READY", "DESIRED", "FLOOR", "QUEUE", "P95", "$/H", "AGE"):
        assert column in rows["llama-8b"], table
    row = rows["llama-8b"]
    assert (row["READY"], row["DESIRED"], row["FLOOR"]) == ("1", "1", "1"), table
    assert float(row["$/H"]) == pytest.approx(3.43), table
    # QUEUE and P95 stay empty without a metrics source; e2e/test_operator_metrics.py checks them filled.


@pytest.mark.parametrize("case", INVALID_SPECS, ids=[c.name for c in INVALID_SPECS])
def test_invalid_spec_is_rejected_by_kubectl_apply_naming_the_field(cluster, namespace, crds, case):
    proc = apply(cluster, namespace, case.object, check=False)
    assert proc.returncode != 0, f"{case.name} was accepted"
    assert case.field in proc.stderr, proc.stderr


def test_at_least_twelve_kinds_of_invalid_spec():
    assert len({c.field for c in INVALID_SPECS}) >= 12


def test_promql_error_is_reported_as_degraded(cluster, namespace, operator):
    md = fast(load_example("llama-8b.yaml"))
    md["spec"].setdefault("metrics", {}).setdefault("queries", {})["queueDepth"] = (
        'sum(vllm:num_requests_waiting{namespace="${namespace}"'  # unbalanced: Prometheus rejects it
    )
    apply(cluster, namespace, md)

    def degraded():
        cond = conditions(get_md(cluster, namespace, "llama-8b")).get("Degraded")
        return cond if cond and cond["status"] == "True" else None

    cond = cluster.wait_for(degraded, 60, "Degraded=True", namespace)
    assert cond["reason"] == "InvalidSpec"
    assert "rejected" in cond["message"] and "num_requests_waiting" in cond["message"]
    metrics = conditions(get_md(cluster, namespace, "llama-8b"))["MetricsAvailable"]
    assert (metrics["status"], metrics["reason"]) == ("False", "QueryFailed")
    # Still the floor: a broken query holds replicas, it does not remove them.
    assert deployment_replicas(cluster, namespace, "llama-8b") == 1


def test_sigkill_during_scale_up_continues_from_status_without_duplicates(cluster, namespace, operator, tmp_path):
    md = fast(load_example("llama-8b.yaml"), cold_start="15s")
    apply(cluster, namespace, md)
    cluster.wait_for(lambda: len(ready_pods(cluster, namespace, f"{MODEL_LABEL}=llama-8b")) == 1, 60,
                     "the warm floor", namespace)

    raised = copy.deepcopy(md)
    raised["spec"]["replicas"]["warmFloor"] = 4
    apply(cluster, namespace, raised)
    cluster.wait_for(lambda: deployment_replicas(cluster, namespace, "llama-8b") == 4, 30,
                     "the scale-up to the new floor", namespace)
    before = get_md(cluster, namespace, "llama-8b")["status"]
    assert len(ready_pods(cluster, namespace, f"{MODEL_LABEL}=llama-8b")) < 4, "scale-up already finished"
    operator.kill()

    restarted = operator_process(cluster, namespace, tmp_path).start()
    try:
        lowest = [4]

        def continued():
            replicas = deployment_replicas(cluster, namespace, "llama-8b")
            lowest[0] = min(lowest[0], replicas)
            status = get_md(cluster, namespace, "llama-8b")["status"]
            return status if (status["lastDecision"]["at"] > before["lastDecision"]["at"]
                              and status.get("readyReplicas") == 4) else None

        status = cluster.wait_for(continued, 90, "the restarted operator to finish the scale-up", namespace)
        assert lowest[0] == 4, "replicas dropped while the operator restarted"
        # The policy's memory and the ledger came back from status rather than starting over.
        assert status["cost"]["gpuHours"] >= before["cost"]["gpuHours"]
        assert status["memory"]["policy"].keys() >= before["memory"]["policy"].keys()
        deployments = cluster.apps.list_namespaced_deployment(namespace, label_selector=f"{MODEL_LABEL}=llama-8b").items
        services = cluster.core.list_namespaced_service(namespace, label_selector=f"{MODEL_LABEL}=llama-8b").items
        assert [d.metadata.name for d in deployments] == ["llama-8b"]
        assert [s.metadata.name for s in services] == ["llama-8b"]
        assert len(cluster.apps.list_namespaced_replica_set(namespace).items) == 1
        assert len([p for p in cluster.pods(namespace, f"{MODEL_LABEL}=llama-8b")
                    if p.metadata.deletion_timestamp is None]) == 4
    finally:
        delete_model_deployments(cluster, namespace)
        restarted.stop()
        print("--- restarted operator log (tail)\n" + "\n".join(restarted.log().splitlines()[-40:]))


def test_deleting_the_model_deployment_removes_its_children(cluster, namespace, operator):
    from kubernetes import client

    apply(cluster, namespace, fast(load_example("llama-70b-batch.yaml")))
    cluster.wait_for(lambda: deployment_replicas(cluster, namespace, "llama-70b-batch-ondemand") is not None, 60,
                     "all three pools' Deployments", namespace)
    client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llama-70b")

    def children_gone():
        selector = f"{MODEL_LABEL}=llama-70b"
        left = (cluster.apps.list_namespaced_deployment(namespace, label_selector=selector).items
                + cluster.core.list_namespaced_service(namespace, label_selector=selector).items
                + [p for p in cluster.pods(namespace, selector)])
        return not left

    cluster.wait_for(children_gone, 90, "Deployments, Services and pods of llama-70b to be gone", namespace)


def test_scale_events_carry_the_reason(cluster, namespace, operator):
    md = fast(load_example("llama-8b.yaml"))
    apply(cluster, namespace, md)
    cluster.wait_for(lambda: deployment_replicas(cluster, namespace, "llama-8b") == 1, 30, "the floor", namespace)
    raised = copy.deepcopy(md)
    raised["spec"]["replicas"]["warmFloor"] = 2
    apply(cluster, namespace, raised)
    scaled = cluster.wait_for(
        lambda: [e for e in events(cluster, namespace, "llama-8b") if e.reason == "ScaledUp"], 30,
        "a ScaledUp event", namespace)
    assert "interactive 1→2" in scaled[0].message and "floor" in scaled[0].message
