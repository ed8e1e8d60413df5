"""The e2e cluster is real: the scheduler places GPU pods by pool, capacity and taints, kwok delays
readiness by each pod's cold start, spot interruptions evict pods, and Prometheus scrapes our targets."""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
from harness import (
    GPU,
    condition,
    gpu_deployment,
    is_ready,
    wait_for,
)

pytestmark = pytest.mark.e2e

kwok_only = pytest.mark.skipif(
    os.environ.get("LEADTIME_E2E_PROFILE", "kwok") != "kwok",
    reason="cold start from an annotation and node re-creation are kwok features",
)


def pool_nodes(cluster, pool: str) -> set[str]:
    return {n.metadata.name for n in cluster.nodes(pool)}


def gpus_requested_on(cluster, nodes: set[str]) -> int:
    """GPUs requested by live pods on the given nodes, across all namespaces."""
    total = 0
    for pod in cluster.core.list_pod_for_all_namespaces().items:
        if pod.spec.node_name in nodes and pod.status.phase in ("Pending", "Running"):
            for c in pod.spec.containers:
                total += int(((c.resources and c.resources.requests) or {}).get(GPU, 0))
    return total


@kwok_only
@pytest.mark.parametrize(("annotation", "cold_start_s"), [("4s", 4.0), (None, 1.0)], ids=["4s", "default-1s"])
def test_gpu_pod_lands_on_on_demand_pool_and_is_ready_only_after_its_cold_start(
    cluster, namespace, annotation, cold_start_s
):
    created_at = time.monotonic()
    cluster.apps.create_namespaced_deployment(
        namespace, gpu_deployment("model", replicas=2, gpus=1, pool="on-demand", cold_start=annotation)
    )

    seen_starting: set[str] = set()

    def all_ready():
        pods = cluster.pods(namespace, "app=model")
        for p in pods:
            if p.status.phase == "Running" and not is_ready(p):
                seen_starting.add(p.metadata.name)
        return pods if len(pods) == 2 and all(is_ready(p) for p in pods) else None

    pods = cluster.wait_for(all_ready, cold_start_s + 30, "2 Ready pods of deployment model", namespace)
    observed_s = time.monotonic() - created_at

    assert {p.spec.node_name for p in pods} <= pool_nodes(cluster, "on-demand")
    # Readiness cannot have been observed before the cold start elapsed since we created the Deployment.
    assert observed_s >= cold_start_s, f"Ready after {observed_s:.2f}s, cold start is {cold_start_s}s"
    assert seen_starting, "pods never showed the Running-but-not-Ready phase of a cold start"
    for p in pods:
        started = p.status.container_statuses[0].state.running.started_at
        ready_at = condition(p, "Ready").last_transition_time
        # API timestamps have 1 s resolution: the measured delay is >= the cold start, and only that
        # rounding plus the kwok controller's reaction time (well under a second when idle) add to it.
        measured_s = (ready_at - started).total_seconds()
        assert cold_start_s <= measured_s <= cold_start_s + 3, f"{p.metadata.name}: {measured_s}s"
        since_creation_s = (ready_at - p.metadata.creation_timestamp).total_seconds()
        assert cold_start_s <= since_creation_s <= cold_start_s + 5, f"{p.metadata.name}: {since_creation_s}s"


@kwok_only
def test_updating_a_starting_pod_does_not_restart_its_cold_start(cluster, namespace):
    # kwok re-queues a pod's stage on every update; the cold start must still count from the start.
    cold_start_s = 6.0
    cluster.apps.create_namespaced_deployment(
        namespace, gpu_deployment("model", replicas=1, cold_start=f"{cold_start_s:g}s")
    )
    (pod,) = cluster.wait_for_pods(namespace, "app=model", 1, 30, ready=False)
    name = pod.metadata.name

    def read():
        return cluster.core.read_namespaced_pod(name, namespace)

    cluster.wait_for(lambda: read().status.phase == "Running", 30, f"{name} to start", namespace)
    started_mono = time.monotonic()
    wait_for(lambda: time.monotonic() - started_mono >= cold_start_s / 2, cold_start_s, "half the cold start")
    cluster.core.patch_namespaced_pod(name, namespace, {"metadata": {"labels": {"touched": "yes"}}})
    assert not is_ready(read())

    ready = cluster.wait_for(
        lambda: (pod := read()) and is_ready(pod) and pod, cold_start_s + 10, f"{name} to be Ready", namespace
    )
    started = ready.status.container_statuses[0].state.running.started_at
    measured_s = (condition(ready, "Ready").last_transition_time - started).total_seconds()
    # A restarted countdown would give >= 1.5 x the cold start (9 s); the absolute deadline gives 6-8 s.
    assert cold_start_s <= measured_s <= cold_start_s + 2, f"Ready {measured_s}s after start"


def test_pods_asking_for_more_gpus_than_the_pool_has_stay_pending_with_the_scheduler_reason(
    cluster, namespace
):
    nodes = pool_nodes(cluster, "on-demand")
    # Another test's pods may still be going away; this test needs the whole pool.
    cluster.wait_for(lambda: gpus_requested_on(cluster, nodes) == 0, 60, "an idle on-demand pool")
    per_node = {int(n.status.allocatable[GPU]) for n in cluster.nodes("on-demand")}
    assert per_node == {8}
    # One whole-node pod per node fits; one more cannot.
    replicas = len(nodes) + 1
    cluster.apps.create_namespaced_deployment(
        namespace, gpu_deployment("big", replicas=replicas, gpus=8, pool="on-demand")
    )

    def settled():
        pods = cluster.pods(namespace, "app=big")
        ready = [p for p in pods if is_ready(p)]
        pending = [p for p in pods if p.status.phase == "Pending" and p.spec.node_name is None]
        unschedulable = [
            p
            for p in pending
            if (c := condition(p, "PodScheduled")) and c.status == "False" and c.reason == "Unschedulable"
        ]
        if len(pods) == replicas and len(ready) == len(nodes) and len(unschedulable) == 1:
            return ready, unschedulable[0]
        return None

    ready, pending = cluster.wait_for(settled, 30, f"{len(nodes)} Ready and 1 Unschedulable", namespace)
    assert sorted(p.spec.node_name for p in ready) == sorted(nodes)
    message = condition(pending, "PodScheduled").message
    assert f"Insufficient {GPU}" in message, message

    def failed_scheduling_event():
        events = cluster.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={pending.metadata.name}"
        ).items
        return [e for e in events if e.reason == "FailedScheduling" and f"Insufficient {GPU}" in e.message]

    cluster.wait_for(failed_scheduling_event, 15, "a FailedScheduling event naming the GPUs", namespace)


def test_spot_pods_need_the_toleration_and_everything_else_stays_off_spot(cluster, namespace):
    spot, on_demand = pool_nodes(cluster, "spot"), pool_nodes(cluster, "on-demand")
    cluster.apps.create_namespaced_deployment(
        namespace, gpu_deployment("batch", replicas=3, pool="spot", tolerate_spot=True)
    )
    cluster.apps.create_namespaced_deployment(namespace, gpu_deployment("anywhere", replicas=6))
    cluster.apps.create_namespaced_deployment(
        namespace, gpu_deployment("intolerant", replicas=1, pool="spot")
    )

    batch = cluster.wait_for_pods(namespace, "app=batch", 3, 30)
    assert {p.spec.node_name for p in batch} <= spot
    anywhere = cluster.wait_for_pods(namespace, "app=anywhere", 6, 30)
    assert {p.spec.node_name for p in anywhere} <= on_demand

    def unschedulable():
        pods = cluster.pods(namespace, "app=intolerant")
        c = condition(pods[0], "PodScheduled") if pods else None
        return c if c and c.status == "False" and c.reason == "Unschedulable" else None

    scheduled = cluster.wait_for(
        unschedulable, 30, "the pod without toleration to be Unschedulable", namespace
    )
    # The scheduler names the count of tainted nodes, not the taint: 3 spot nodes with our taint.
    assert "3 node(s) had untolerated taint" in scheduled.message, scheduled.message
    assert cluster.pods(namespace, "app=intolerant")[0].spec.node_name is None


def _spot_replicas_survive(cluster, namespace, interrupt, restore, timeout_s):
    cluster.apps.create_namespaced_deployment(
        namespace, gpu_deployment("batch", replicas=3, pool="spot", tolerate_spot=True)
    )
    before = cluster.wait_for_pods(namespace, "app=batch", 3, 30)
    victim = before[0].spec.node_name
    evicted = {p.metadata.name for p in before if p.spec.node_name == victim}
    interrupt(victim)
    try:

        def recovered():
            pods = [p for p in cluster.pods(namespace, "app=batch") if p.metadata.deletion_timestamp is None]
            names = {p.metadata.name for p in pods}
            ok = (
                len(pods) == 3
                and all(is_ready(p) for p in pods)
                and not names & evicted
                and all(p.spec.node_name != victim for p in pods)
            )
            return pods if ok else None

        after = cluster.wait_for(
            recovered, timeout_s, f"3 Ready replacements off {victim} (evicted: {sorted(evicted)})", namespace
        )
        assert {p.spec.node_name for p in after} <= pool_nodes(cluster, "spot") - {victim}
    finally:
        restore(victim)


def test_noexecute_taint_on_a_spot_node_evicts_its_pods_and_the_replicaset_recreates_them(cluster, namespace):
    taint = "leadtime.dev/spot-interruption=true:NoExecute"
    _spot_replicas_survive(
        cluster,
        namespace,
        interrupt=lambda node: cluster.kubectl("taint", "node", node, taint),
        restore=lambda node: cluster.kubectl("taint", "node", node, taint + "-", check=False),
        timeout_s=60,
    )


@kwok_only
def test_deleting_a_spot_node_evicts_its_pods_and_the_replicaset_recreates_them(cluster, namespace):
    # Pods bound to a deleted node are removed by the pod garbage collector, which waits out a 40 s
    # quarantine and runs every 20 s: allow for both.
    _spot_replicas_survive(
        cluster,
        namespace,
        interrupt=lambda node: cluster.kubectl("delete", "node", node, "--wait=true"),
        restore=lambda node: cluster.restore_nodes(),
        timeout_s=150,
    )


def test_prometheus_scrapes_an_added_target_and_answers_through_prometheus_api_client(cluster):
    from prometheus_api_client import PrometheusConnect
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    gauge = Gauge("leadtime_e2e_probe", "probe for the e2e harness", ["pool"], registry=registry)
    marker = float(uuid.uuid4().int % 100000)
    gauge.labels(pool="from-exporter").set(marker)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    name = f"e2e-probe-{port}"
    address = f"127.0.0.1:{port}"
    cluster.add_scrape_target(name, address, {"pool": "from-target", "probe": "yes"})
    prom = PrometheusConnect(url=cluster.prometheus_url, disable_ssl=True)
    try:
        up = cluster.wait_for(
            lambda: prom.custom_query(f'up{{instance="{address}"}} == 1'),
            30,
            f"Prometheus to scrape {address}",
        )
        assert up[0]["metric"]["probe"] == "yes"
        series = wait_for(
            lambda: prom.custom_query(f'leadtime_e2e_probe{{instance="{address}"}}'), 10, "the probe series"
        )
        assert float(series[0]["value"][1]) == marker
        # honor_labels: the exporter's own pool label wins over the target's.
        assert series[0]["metric"]["pool"] == "from-exporter"
    finally:
        cluster.remove_scrape_target(name)
        server.shutdown()
        thread.join(5)
