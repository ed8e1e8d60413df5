"""Graceful scale-down on the real control plane: the removed replicas are the least busy, they stay
Terminating for their grace period while they finish what they run, and no request is re-queued.

One ModelDeployment at four busy replicas under a steady load; lowering spec.replicas.max to two makes
the operator scale down at once. Just before it does, it annotates the pods with their in-flight
requests (pod-deletion-cost), so the ReplicaSet removes the two least busy. The emulator lets each
terminating pod finish its requests and gives it no new ones; kwok deletes it when its grace period
ends. What a user would notice is checked: which pods went, how long they took, and the emulator's
re-queued and lost counters, which stay at zero.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
import yaml
from harness import is_ready
from operator_process import (
    apply,
    decision_lines,
    emulator_process,
    fast,
    load_example,
    operator_process,
    rate_trace,
)
from test_operator_metrics import crds, processes  # noqa: F401 - pytest fixtures, shared with that module

pytestmark = pytest.mark.e2e

MODEL_LABEL = "serving.leadtime.dev/model"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
NAME = "drain"
BEFORE, AFTER = 4, 2
GRACE_S, PRE_STOP_S = 15, 2
RATE_RPS = 1.2
INPUT_TOKENS, OUTPUT_TOKENS = 256, 200
# A slow replica, so each request runs ~7-9 s and every pod has several in flight at any moment: a pod
# removed at once would take them down with it. 16 sequences at once keeps two replicas enough.
PROFILE = {
    "name": "e2e-drain", "prefill_tokens_per_s": 4000.0, "decode_base_s": 0.02, "decode_per_seq_s": 0.004,
    "max_num_seqs": 16, "kv_cache_tokens": 200_000, "gpus_per_replica": 1,
}


def drain_spec() -> dict:
    md = fast(load_example("llama-8b.yaml"), cold_start="2s", interval_s=1)
    md["metadata"]["name"] = NAME
    spec = md["spec"]
    spec["replicas"] = {"warmFloor": BEFORE, "max": BEFORE}
    spec["capacity"].update(maxConcurrency=PROFILE["max_num_seqs"], requestsPerSecondPerReplica=1.0)
    spec["metrics"] = {"window": "15s"}
    spec["drain"] = {"terminationGracePeriodSeconds": GRACE_S, "preStopSleepSeconds": PRE_STOP_S}
    return md


def emulator_samples(port: int) -> dict[tuple[str, str], float]:
    """(sample name, pod label) -> value from the emulator's own /metrics (pod '' for unlabelled)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("pod", ""))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


@pytest.mark.parametrize(("drain", "field"), [
    ({"terminationGracePeriodSeconds": 3601}, "spec.drain.terminationGracePeriodSeconds"),
    ({"terminationGracePeriodSeconds": 5, "preStopSleepSeconds": 10}, "spec.drain.preStopSleepSeconds"),
])
def test_bad_drain_settings_are_rejected_by_kubectl_apply_naming_the_field(cluster, namespace, crds, drain, field):  # noqa: F811
    md = drain_spec()
    md["spec"]["drain"] = drain
    proc = apply(cluster, namespace, md, check=False)
    assert proc.returncode != 0, f"{drain} was accepted"
    assert field in proc.stderr, proc.stderr


@pytest.mark.timeout(300)
def test_scale_down_removes_the_least_busy_replicas_which_drain_without_requeueing(
    cluster, namespace, crds, processes, tmp_path  # noqa: F811 - fixtures
):
    from prometheus_api_client import PrometheusConnect

    if cluster.profile != "kwok":
        pytest.skip("needs the emulator and kwok's pod-delete stage")
    if not cluster.prometheus_url or cluster.prometheus_targets_dir is None:
        pytest.skip("needs the local Prometheus with a file_sd targets directory")
    started = time.monotonic()
    selector = f"{MODEL_LABEL}={NAME}"
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    trace = rate_trace(tmp_path / "steady.csv", [(0, 3600, RATE_RPS)], INPUT_TOKENS, OUTPUT_TOKENS)

    operator = operator_process(cluster, namespace, tmp_path).start()
    processes.append(operator)
    apply(cluster, namespace, drain_spec())
    cluster.wait_for_pods(namespace, selector, BEFORE, timeout_s=60)
    pod_spec = cluster.pods(namespace, selector)[0].spec
    assert pod_spec.termination_grace_period_seconds == GRACE_S
    assert pod_spec.containers[0].lifecycle.pre_stop.sleep.seconds == PRE_STOP_S
    emulator = emulator_process(cluster, namespace, NAME, trace, tmp_path, extra=(
        "--profile", str(profile), "--seed", "5", "--wait-for-ready", str(BEFORE))).start()
    processes.append(emulator)

    # Steady state: every pod busy, and Prometheus has each pod's load (what the operator will read).
    def all_busy():
        running = {pod: v for (name, pod), v in emulator_samples(emulator.port).items()
                   if name == "vllm:num_requests_running" and pod}
        return running if len(running) == BEFORE and min(running.values()) >= 1 else None

    cluster.wait_for(all_busy, 60, f"requests in flight on all {BEFORE} pods", namespace, interval_s=0.5)
    prom = PrometheusConnect(url=cluster.prometheus_url, disable_ssl=True)
    cluster.wait_for(lambda: len(prom.custom_query(
        f'vllm:num_requests_running{{namespace="{namespace}",model_deployment="{NAME}",pod!=""}}')) == BEFORE,
        30, "Prometheus to scrape every pod", namespace)
    cluster.wait_for(lambda: len([d for d in decision_lines(operator) if d["metrics"] == "MetricsRead"]) >= 3, 30,
                     "a few decisions on real metrics", namespace)
    # Steady ticks leave the pods alone: costs are set only when a scale-down comes.
    assert all(DELETION_COST not in (p.metadata.annotations or {}) for p in cluster.pods(namespace, selector))

    cluster.kubectl("patch", "md", NAME, "-n", namespace, "--type=merge",
                    "-p", f'{{"spec": {{"replicas": {{"warmFloor": {AFTER}, "max": {AFTER}}}}}}}')

    leaving: dict[str, dict] = {}  # pod -> what it looked like when it started terminating
    survivors: dict[str, str | None] = {}

    def two_terminating():
        samples = emulator_samples(emulator.port)
        pods = cluster.pods(namespace, selector)
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None and pod.metadata.name not in leaving:
                leaving[pod.metadata.name] = {
                    "cost": (pod.metadata.annotations or {}).get(DELETION_COST),
                    "deadline_s": pod.metadata.deletion_timestamp.timestamp(),
                    "grace_s": pod.metadata.deletion_grace_period_seconds,
                    "running": samples.get(("vllm:num_requests_running", pod.metadata.name), 0.0),
                    "draining": samples.get(("leadtime_emulator_pod_draining", pod.metadata.name), 0.0),
                }
        if len(leaving) < BEFORE - AFTER:
            return None
        survivors.update({p.metadata.name: (p.metadata.annotations or {}).get(DELETION_COST) for p in pods
                          if p.metadata.deletion_timestamp is None and is_ready(p)})
        return leaving

    cluster.wait_for(two_terminating, 30, f"{BEFORE - AFTER} pods terminating after max was lowered", namespace)
    assert len(leaving) == BEFORE - AFTER and len(survivors) == AFTER, (leaving, survivors)

    # The least busy went: each removed pod's cost, set before its deletion, is no higher than a survivor's.
    assert all(info["cost"] is not None for info in leaving.values()) and None not in survivors.values(), (
        leaving, survivors)
    removed_costs = {name: int(info["cost"]) for name, info in leaving.items()}
    survivor_costs = {name: int(cost) for name, cost in survivors.items()}
    assert max(removed_costs.values()) <= min(survivor_costs.values()), (removed_costs, survivor_costs)
    assert sum(removed_costs.values()) + sum(survivor_costs.values()) > 0, "every cost neutral: no load was read"
    (down,) = [d for d in decision_lines(operator) if d["scaled"].get("interactive") == [BEFORE, AFTER]]
    assert down["deletionCosts"]["interactive"] == {**removed_costs, **survivor_costs}

    # They drain: the emulator gives them no new requests and they still had some to finish.
    assert all(info["grace_s"] == GRACE_S for info in leaving.values()), leaving
    assert sum(info["running"] for info in leaving.values()) >= 1, f"nothing in flight to drain: {leaving}"

    def drain_flagged():
        samples = emulator_samples(emulator.port)
        return all(samples.get(("leadtime_emulator_pod_draining", name)) == 1 for name in leaving)

    cluster.wait_for(drain_flagged, 5, "the emulator to treat the terminating pods as draining", namespace)
    # An update of a terminating pod (kwok re-queues its stage) must not push its end back.
    touched = sorted(leaving)[0]
    cluster.kubectl("annotate", "pod", touched, "-n", namespace, "e2e.leadtime.dev/touched=yes")

    gone_at_s: dict[str, float] = {}

    def all_gone():
        present = {p.metadata.name for p in cluster.pods(namespace, selector)}
        for name in leaving:
            if name not in present and name not in gone_at_s:
                gone_at_s[name] = time.time()
        return len(gone_at_s) == len(leaving)

    cluster.wait_for(all_gone, GRACE_S + 20, "the terminating pods to go after their grace period", namespace)
    for name, info in leaving.items():
        # deletionTimestamp has whole seconds; the pod goes within a second or two of it, never long before.
        assert info["deadline_s"] - 1.5 <= gone_at_s[name] <= info["deadline_s"] + 5, (name, info, gone_at_s[name])

    # The emulator drops a vanished pod at its next poll; then nothing was re-queued or lost.
    def settled():
        samples = emulator_samples(emulator.port)
        return samples if not any(samples.get(("vllm:num_requests_running", n)) is not None for n in leaving) else None

    samples = cluster.wait_for(settled, 10, "the emulator to drop the removed pods", namespace)
    requeued = samples[("leadtime_emulator_requests_requeued_total", "")]
    lost = samples[("leadtime_emulator_requests_lost_total", "")]
    drained = samples[("leadtime_emulator_requests_drained_total", "")]
    in_flight = sum(info["running"] for info in leaving.values())
    print(f"removed {removed_costs} (survivors {survivor_costs}); {in_flight:.0f} in flight on them at deletion, "
          f"{drained:.0f} finished while draining, requeued {requeued:.0f}, lost {lost:.0f}; "
          f"test wall time {time.monotonic() - started:.0f} s")
    assert requeued == 0 and lost == 0
    assert drained >= 1, "no request finished on a draining pod"
