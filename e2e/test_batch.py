"""Scenario 4, batch work: batch replicas only on spot nodes, a spot interruption loses no request, and
when the whole spot pool is gone the on-demand fallback engages within its budget and hands the work
back when spot returns.

The test brings its own two spot nodes (kwok), labelled and tainted for this test only, and a
ModelDeployment whose batch pool selects them: interrupting them leaves the cluster's shared spot
nodes, and every other test using them, alone.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from harness import GPU, POOL_LABEL, is_ready
from operator_process import (
    apply,
    decision_lines,
    delete_model_deployments,
    deployment_replicas,
    emulator_process,
    events,
    fast,
    load_example,
    operator_process,
)
from test_operator_metrics import crds, processes  # noqa: F401 - pytest fixtures, shared with that module
from test_ramp import PRIOR_RPS_PER_REPLICA, PROFILE

pytestmark = pytest.mark.e2e

NAME = "batchy"
MODEL_LABEL = "serving.leadtime.dev/model"
PODS_POOL_LABEL = "serving.leadtime.dev/pool"
TEST_POOL_LABEL = "leadtime.dev/e2e-spot-pool"
INTERRUPTION_TAINT = "leadtime.dev/spot-interruption=true:NoExecute"
INTERVAL_S = 2
AFTER_PENDING_S = 10
SPOT_MAX, FALLBACK_MAX = 4, 2
GPUS_PER_SPOT_NODE = 4  # one node holds the whole batch pool, so one interruption can be absorbed
BATCH_RPS, INTERACTIVE_RPS = 4.0, 1.0
# Budget for the fallback, from the moment the last spot node goes: eviction and the replacement pods'
# creation, their afterPendingSeconds, then a few control intervals (metrics, decision, scale).
FALLBACK_BUDGET_S = AFTER_PENDING_S + 5 * INTERVAL_S


def spot_node(name: str, namespace: str) -> dict:
    """A fake spot GPU node for this test only: the spot label and taint plus a taint of its own."""
    capacity = {"cpu": "96", "memory": "1Ti", "pods": "110", "ephemeral-storage": "1Ti", GPU: str(GPUS_PER_SPOT_NODE)}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", POOL_LABEL: "spot", TEST_POOL_LABEL: namespace},
        },
        "spec": {"taints": [{"key": POOL_LABEL, "value": "spot", "effect": "NoSchedule"},
                            {"key": TEST_POOL_LABEL, "value": namespace, "effect": "NoSchedule"}]},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


@pytest.fixture
def spot_nodes(cluster, namespace):
    if cluster.profile != "kwok":
        pytest.skip("creates fake spot nodes (kwok)")
    names = [f"spot-{namespace}-{i}" for i in range(2)]
    for name in names:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(spot_node(name, namespace)))
    try:
        cluster.wait_for(
            lambda: all(any(c.type == "Ready" and c.status == "True" for c in (cluster.core.read_node(n).status.conditions or []))
                        for n in names), 60, "the test's spot nodes to be Ready")
        yield names
    finally:
        # Pods still bound to a deleted node wait out the pod garbage collector's quarantine (~1 min) and
        # hold up the namespace's deletion: remove the workload first (the operator still runs here, it
        # removes its finalizer), and the nodes once their pods are gone.
        delete_model_deployments(cluster, namespace)

        def no_pods_left():
            return not [p for p in cluster.core.list_namespaced_pod(namespace).items if p.spec.node_name in names]

        try:
            cluster.wait_for(no_pods_left, 60, "the test's spot nodes to be empty", namespace)
        finally:
            for name in names:
                cluster.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)


def batch_spec(namespace: str) -> dict:
    md = fast(load_example("llama-8b.yaml"), cold_start="5s", interval_s=INTERVAL_S)
    md["metadata"]["name"] = NAME
    spec = md["spec"]
    spec["replicas"] = {"warmFloor": 1, "max": 2}
    spec["capacity"].update(maxConcurrency=PROFILE["max_num_seqs"], requestsPerSecondPerReplica=PRIOR_RPS_PER_REPLICA)
    spec["metrics"] = {"window": "15s"}
    spec["pools"]["batch"] = {
        "enabled": True,
        "nodeSelector": {POOL_LABEL: "spot", TEST_POOL_LABEL: namespace},
        "tolerations": [{"key": POOL_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
                        {"key": TEST_POOL_LABEL, "operator": "Equal", "value": namespace, "effect": "NoSchedule"}],
        "pricePerGpuHour": 1.5,
        "maxReplicas": SPOT_MAX,
        "deadlineSeconds": 120,
        "onDemandFallback": {"enabled": True, "afterPendingSeconds": AFTER_PENDING_S, "maxReplicas": FALLBACK_MAX},
    }
    return md


def write_mixed_trace(path, duration_s: float):
    """Steady interactive and batch traffic (rate CSV with a class column), longer than the test."""
    path.write_text(
        "start_s,duration_s,rate_rps,input_tokens,output_tokens,class\n"
        f"0,{duration_s},{INTERACTIVE_RPS},256,64,interactive\n"
        f"0,{duration_s},{BATCH_RPS},256,64,batch\n"
    )
    return path


def live_pods(cluster, namespace, pool):
    return [p for p in cluster.pods(namespace, f"{MODEL_LABEL}={NAME},{PODS_POOL_LABEL}={pool}")
            if p.metadata.deletion_timestamp is None]


def node_labels(cluster, node: str) -> dict[str, str]:
    return cluster.core.read_node(node).metadata.labels or {}


def emulator_counter(prom, namespace: str, metric: str) -> float:
    result = prom.custom_query(f'sum({metric}{{namespace="{namespace}",model_deployment="{NAME}"}})')
    assert result, f"no {metric} series in Prometheus: is the emulator running?"
    return float(result[0]["value"][1])


@pytest.mark.timeout(420)
def test_batch_runs_on_spot_survives_interruptions_and_falls_back_to_on_demand(
    cluster, namespace, crds, processes, spot_nodes, tmp_path  # noqa: F811 - fixtures
):
    from prometheus_api_client import PrometheusConnect

    if not cluster.prometheus_url or cluster.prometheus_targets_dir is None:
        pytest.skip("needs the local Prometheus with a file_sd targets directory")
    prom = PrometheusConnect(url=cluster.prometheus_url, disable_ssl=True)
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    trace = write_mixed_trace(tmp_path / "mixed.csv", 900)

    operator = operator_process(cluster, namespace, tmp_path).start()
    processes.append(operator)
    apply(cluster, namespace, batch_spec(namespace))
    cluster.wait_for_pods(namespace, f"{MODEL_LABEL}={NAME},{PODS_POOL_LABEL}=interactive", 1, timeout_s=60)
    processes.append(emulator_process(cluster, namespace, NAME, trace, tmp_path,
                                      extra=("--profile", str(profile), "--wait-for-ready", "1")).start())

    # Batch replicas come up on the test's spot nodes.
    def batch_ready_on_spot(minimum):
        pods = live_pods(cluster, namespace, "batch")
        ready = [p for p in pods if is_ready(p)]
        return ready if len(ready) >= minimum and len(ready) == len(pods) else None

    before = cluster.wait_for(lambda: batch_ready_on_spot(2), 120, "2 Ready batch replicas on spot", namespace)
    assert {p.spec.node_name for p in before} <= set(spot_nodes)

    # A spot interruption: the node with most batch replicas gets a NoExecute taint; its pods are evicted,
    # recreated by their ReplicaSet and land on the other spot node.
    on_node = {n: [p.metadata.name for p in before if p.spec.node_name == n] for n in spot_nodes}
    victim = max(on_node, key=lambda n: len(on_node[n]))
    survivor = next(n for n in spot_nodes if n != victim)
    cluster.kubectl("taint", "node", victim, INTERRUPTION_TAINT)

    def rescheduled():
        pods = batch_ready_on_spot(len(before))
        if not pods or {p.metadata.name for p in pods} & set(on_node[victim]):
            return None
        return pods if all(p.spec.node_name == survivor for p in pods) else None

    cluster.wait_for(rescheduled, 60, f"batch replicas evicted from {victim} Ready again on {survivor}", namespace)

    # The whole spot pool goes: batch replicas stay Pending and the on-demand fallback engages.
    cluster.kubectl("taint", "node", survivor, INTERRUPTION_TAINT)
    removed_s = time.time()

    def fallback_ready():
        pods = [p for p in live_pods(cluster, namespace, "batch-ondemand") if is_ready(p)]
        return pods or None

    fallback = cluster.wait_for(fallback_ready, FALLBACK_BUDGET_S + 30, "Ready on-demand fallback replicas", namespace)
    ready_after_s = time.time() - removed_s
    engaged = [e for e in events(cluster, namespace, NAME)
               if e.reason == "ScaledUp" and "batch-ondemand 0→" in e.message]
    assert engaged, "no ScaledUp event for the fallback pool"
    engaged_after_s = (engaged[0].event_time or engaged[0].last_timestamp).timestamp() - removed_s
    print(f"fallback decided {engaged_after_s:.1f} s and Ready {ready_after_s:.1f} s after the spot pool went "
          f"(budget {FALLBACK_BUDGET_S} s): {engaged[0].message}")
    assert engaged_after_s <= FALLBACK_BUDGET_S, engaged[0].message
    assert all(node_labels(cluster, p.spec.node_name).get(POOL_LABEL) == "on-demand" for p in fallback)
    pending_spot = [p for p in live_pods(cluster, namespace, "batch") if not p.spec.node_name]
    assert pending_spot, "spot replicas should be Pending while no spot node is left"
    # Batch work goes on, on the fallback, while spot is away.
    completed = emulator_counter(prom, namespace, "leadtime_emulator_requests_completed_total")
    cluster.wait_for(
        lambda: emulator_counter(prom, namespace, "leadtime_emulator_requests_completed_total") > completed + 20,
        60, "requests completing during the spot outage", namespace)

    # Spot returns: batch goes back to spot and the fallback is released.
    for node in spot_nodes:
        cluster.kubectl("taint", "node", node, INTERRUPTION_TAINT + "-")
    returned_s = time.time()

    def back_on_spot():
        if deployment_replicas(cluster, namespace, f"{NAME}-batch-ondemand") != 0:
            return None
        if live_pods(cluster, namespace, "batch-ondemand"):
            return None
        return batch_ready_on_spot(1)

    cluster.wait_for(back_on_spot, 90, "batch back on spot with the fallback at 0", namespace)
    print(f"back on spot {time.time() - returned_s:.1f} s after spot returned")

    # Every batch replica ever scheduled went to a spot node, and the pools stayed within their bounds.
    scheduled = [e for e in cluster.core.list_namespaced_event(namespace, field_selector="reason=Scheduled").items
                 if e.involved_object.name.startswith(f"{NAME}-batch-")]
    spot_pods = {e.involved_object.name: e.message.rsplit(" to ", 1)[1] for e in scheduled
                 if not e.involved_object.name.startswith(f"{NAME}-batch-ondemand-")}
    assert len(spot_pods) > len(before), spot_pods  # the first replicas, their replacements, the return
    for pod, node in spot_pods.items():
        assert node in spot_nodes and node_labels(cluster, node).get(POOL_LABEL) == "spot", (pod, node)
    decided = [d["replicas"] for d in decision_lines(operator) if d["name"] == NAME]
    assert max(r.get("batch-ondemand", 0) for r in decided) <= FALLBACK_MAX
    assert max(r.get("batch", 0) for r in decided) <= SPOT_MAX

    # Not one request lost: in-flight requests of evicted or released replicas went back to the queue.
    requeued = emulator_counter(prom, namespace, "leadtime_emulator_requests_requeued_total")
    lost = emulator_counter(prom, namespace, "leadtime_emulator_requests_lost_total")
    print(f"requeued {requeued:.0f}, lost {lost:.0f}")
    assert lost == 0
    assert requeued > 0, "the interruptions should have re-queued in-flight requests"
