"""One control tick with a fake cluster, a fake metrics source and a scripted policy."""

from __future__ import annotations

import copy
from typing import Any

from leadtime.handlers.reconcile import run_tick
from leadtime.metrics.source import MetricsReading
from leadtime.policy.types import ClassObservation, Decision, Observation, PoolDecision, PoolState, ReadyPod

T0 = 1_750_000_000.0

MD = {
    "metadata": {"name": "llama", "namespace": "ml", "uid": "u-1", "generation": 3},
    "spec": {
        "mode": "active",
        "controlIntervalSeconds": 5,
        "model": {"image": "vllm/vllm-openai:v0.11.0", "gpus": 2},
        "slo": {"latency": "ttft", "p95Seconds": 2.0},
        "replicas": {"warmFloor": 1, "max": 10},
        "pools": {"interactive": {"pricePerGpuHour": 3.0}},
        "metrics": {"prometheusUrl": "http://prometheus.test:9090"},
    },
}


class FakeCluster:
    def __init__(self, desired: int = 1, ready: int = 1):
        self.pools = {"interactive": PoolState(
            desired=desired, ready=tuple(ReadyPod(ready_at_s=T0 - 100 + i, cold_start_s=30.0) for i in range(ready)))}
        self.scaled: list[tuple[str, int]] = []
        self.status: dict[str, Any] = {}

    def read_pools(self, md, now_s):
        return dict(self.pools)

    def scale(self, md, pool, replicas):
        self.scaled.append((pool, replicas))

    def patch_status(self, md, patch):
        self.status = _apply_merge_patch(self.status, patch)


def _apply_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply_merge_patch(result.get(key), value)
    return result


class FakeSource:
    def __init__(self, reading_fn):
        self.reading_fn = reading_fn

    def read(self, queries, now_s):
        return self.reading_fn(now_s)


def healthy(now_s: float) -> MetricsReading:
    return MetricsReading(Observation(
        at_s=now_s, interactive=ClassObservation(arrival_rate_rps=10.0, queue_depth=4, running=16, p95_latency_s=0.9)))


def down(now_s: float) -> MetricsReading:
    return MetricsReading(Observation(at_s=now_s, available=False), reason="PrometheusUnreachable", message="refused")


class ScriptedPolicy:
    """Stands in for decide(): returns the replicas it is told, counts its calls in memory."""

    def __init__(self, replicas: int, reason: str = "forecast 20.0 rps in 35 s needs 3 replicas"):
        self.replicas, self.reason = replicas, reason
        self.seen: list[tuple[Observation, dict]] = []

    def __call__(self, config, observation, pools, memory, now_s):
        self.seen.append((observation, memory))
        held = not observation.available
        replicas = pools["interactive"].desired if held else self.replicas
        return Decision(pools={"interactive": PoolDecision(replicas, "held" if held else self.reason)},
                        memory={"ticks": memory.get("ticks", 0) + 1}, lead_time_s=35.0, forecast_rps=20.0, held=held)


def tick(cluster, policy, reading_fn=healthy, md=MD, now_s=T0, events=None):
    body = copy.deepcopy(md)
    body["status"] = copy.deepcopy(cluster.status)
    sink = events if events is not None else []
    return run_tick(body, cluster=cluster, metrics_source=lambda url: FakeSource(reading_fn), decide=policy,
                    post_event=lambda md, t, r, m: sink.append((t, r, m)), now_s=now_s)


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


def test_scale_up_patches_once_posts_event_and_reports_status():
    cluster, events = FakeCluster(desired=1, ready=1), []
    tick(cluster, ScriptedPolicy(3), events=events)
    assert cluster.scaled == [("interactive", 3)]
    assert events == [("Normal", "ScaledUp", "scaled interactive 1→3: forecast 20.0 rps in 35 s needs 3 replicas")]
    status = cluster.status
    assert status["observedGeneration"] == 3
    assert (status["readyReplicas"], status["desiredReplicas"]) == (1, 3)
    assert status["pools"]["interactive"] == {"ready": 1, "starting": 0, "pending": 0, "desired": 3}
    assert status["observation"]["queueDepth"] == 4 and status["observation"]["p95LatencySeconds"] == 0.9
    assert status["lastDecision"]["replicas"] == {"interactive": 3}
    assert status["lastDecision"]["reason"].startswith("forecast 20.0 rps")
    assert status["learnedColdStartP90Seconds"] == 35.0
    cond = conditions(status)
    assert cond["MetricsAvailable"]["status"] == "True"
    assert (cond["Scaling"]["status"], cond["Scaling"]["reason"]) == ("True", "ScalingUp")
    assert (cond["Ready"]["status"], cond["Ready"]["reason"]) == ("False", "ReplicasStarting")
    assert cond["Degraded"]["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])

    # The Deployment now says 3: the same decision again changes nothing and posts nothing.
    cluster.pools["interactive"] = PoolState(desired=3, ready=cluster.pools["interactive"].ready)
    tick(cluster, ScriptedPolicy(3), events=events, now_s=T0 + 5)
    assert cluster.scaled == [("interactive", 3)] and len(events) == 1


def test_shadow_mode_reports_but_never_scales():
    md = copy.deepcopy(MD)
    md["spec"]["mode"] = "shadow"
    cluster, events = FakeCluster(desired=1), []
    tick(cluster, ScriptedPolicy(4), md=md, events=events)
    assert cluster.scaled == []
    assert events[0][2].startswith("shadow: would scale interactive 1→4")
    assert cluster.status["lastDecision"]["replicas"] == {"interactive": 4}
    assert conditions(cluster.status)["Ready"]["reason"] == "ShadowMode"


def test_metrics_down_holds_then_recovers_with_transition_times():
    cluster, policy = FakeCluster(desired=2, ready=2), ScriptedPolicy(5)
    tick(cluster, policy, reading_fn=down)
    assert cluster.scaled == []
    cond = conditions(cluster.status)["MetricsAvailable"]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "PrometheusUnreachable", "refused")
    assert conditions(cluster.status)["Scaling"]["reason"] == "HeldNoMetrics"
    assert cluster.status["lastDecision"]["held"] is True
    first_transition = cond["lastTransitionTime"]

    tick(cluster, policy, reading_fn=down, now_s=T0 + 60)
    assert conditions(cluster.status)["MetricsAvailable"]["lastTransitionTime"] == first_transition

    tick(cluster, policy, now_s=T0 + 120)
    cond = conditions(cluster.status)["MetricsAvailable"]
    assert cond["status"] == "True" and cond["lastTransitionTime"] == "2025-06-15T15:08:40Z"
    assert cluster.scaled == [("interactive", 5)]


def test_memory_survives_in_status_and_ledger_accumulates():
    cluster, policy = FakeCluster(desired=2, ready=2), ScriptedPolicy(2)
    tick(cluster, policy)
    assert cluster.status["memory"]["policy"] == {"ticks": 1}
    assert cluster.status["cost"]["gpuHours"] == 0.0
    # A restarted operator starts from what the status says (the fake keeps nothing else).
    tick(cluster, ScriptedPolicy(2), now_s=T0 + 360)
    assert policy.seen[0][1] == {}
    assert cluster.status["memory"]["policy"] == {"ticks": 2}
    cost = cluster.status["cost"]
    # 2 replicas x 2 GPUs x 0.1 h = 0.4 GPU-h at $3/GPU-h; 10 rps for 360 s = 3600 requests.
    assert cost["dollarsPerHour"] == 12.0
    assert cost["gpuHours"] == 0.4
    assert cost["requestsServed"] == 3600.0
    assert cost["costPer1kRequests"] == round(1000 * 1.2 / 3600, 4)
    # 16 of 2 x 32 slots busy: three quarters of the GPU time idle.
    assert cost["idleGpuShare"] == 0.75


def test_rejected_query_is_degraded_invalid_spec():
    def rejected(now_s):
        return MetricsReading(Observation(at_s=now_s, available=False), reason="QueryFailed",
                              message="Prometheus rejected a query: parse error")
    cluster = FakeCluster()
    tick(cluster, ScriptedPolicy(1), reading_fn=rejected)
    cond = conditions(cluster.status)
    assert (cond["Degraded"]["status"], cond["Degraded"]["reason"]) == ("True", "InvalidSpec")
    assert "parse error" in cond["Degraded"]["message"]
    assert cond["MetricsAvailable"]["reason"] == "QueryFailed"


def test_spec_the_schema_missed_is_degraded_and_nothing_scales():
    md = copy.deepcopy(MD)
    md["spec"]["replicas"] = {"warmFloor": 5, "max": 2}
    cluster = FakeCluster()
    result = tick(cluster, ScriptedPolicy(3), md=md)
    assert result.decision is None and cluster.scaled == []
    cond = conditions(cluster.status)["Degraded"]
    assert cond["status"] == "True" and cond["reason"] == "InvalidSpec"
