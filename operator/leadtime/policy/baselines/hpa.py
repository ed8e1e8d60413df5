"""`hpa`: the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) as KEDA's Prometheus scaler drives it.

Re-implemented from kubernetes/kubernetes `pkg/controller/podautoscaler/replica_calculator.go`
(`GetExternalPerPodMetricReplicas`) and `horizontal.go` (`stabilizeRecommendationWithBehaviors`,
`convertDesiredReplicasWithBehaviorRate`, `calculateScaleUpLimitWithScalingRules`,
`calculateScaleDownLimitWithBehaviors`), with the documented defaults:

- KEDA exposes the query (here: waiting + running requests, summed) as an External metric with an
  `AverageValue` target (KEDA's default metricType), so
  `desired = ceil(metric / target)` unless `|metric / (target × statusReplicas) − 1| ≤ 0.1`
  (`--horizontal-pod-autoscaler-tolerance`), in which case the replicas stay;
- the controller syncs every 15 s (`--horizontal-pod-autoscaler-sync-period`);
- scale-up: no stabilisation window; policies `4 Pods / 15 s` and `100 Percent / 15 s`, selectPolicy
  Max (the larger change wins), counted from the replicas at the start of the period;
- scale-down: 300 s stabilisation window (the max of the recommendations in the window);
  policy `100 Percent / 15 s`;
- min/max replicas: the warm floor (at least 1: HPA cannot scale to zero; KEDA's activation would
  handle 0↔1) and max replicas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from leadtime.policy.baselines.common import decide_each_pool, in_flight, sweep_targets
from leadtime.policy.bounds import record_windowed_max
from leadtime.policy.types import (
    BATCH,
    INTERACTIVE,
    ClassObservation,
    Decision,
    Memory,
    Observation,
    PolicyConfig,
    PoolState,
)

SYNC_PERIOD_S = 15.0
TOLERANCE = 0.1
SCALE_DOWN_STABILIZATION_S = 300.0
SCALE_UP_PODS_PER_PERIOD = 4
SCALE_UP_PERCENT_PER_PERIOD = 100.0
SCALE_DOWN_PERCENT_PER_PERIOD = 100.0
POLICY_PERIOD_S = 15.0


def metric_replicas(usage: float, target_per_pod: float, status_replicas: int) -> tuple[int, float]:
    """GetExternalPerPodMetricReplicas: (replicas, usage ratio)."""
    if status_replicas <= 0:
        return math.ceil(usage / target_per_pod), math.inf
    usage_ratio = usage / (target_per_pod * status_replicas)
    if abs(1.0 - usage_ratio) <= TOLERANCE:
        return status_replicas, usage_ratio
    return math.ceil(usage / target_per_pod), usage_ratio


def changes_in_period(events: list[list[float]], now_s: float) -> int:
    return int(sum(change for at_s, change in events if now_s - at_s < POLICY_PERIOD_S))


def scale_up_limit(
    current: int, up_events: list[list[float]], down_events: list[list[float]], now_s: float
) -> int:
    """calculateScaleUpLimitWithScalingRules with the default policies (selectPolicy Max)."""
    period_start = current - changes_in_period(up_events, now_s) + changes_in_period(down_events, now_s)
    by_pods = period_start + SCALE_UP_PODS_PER_PERIOD
    by_percent = math.ceil(period_start * (1.0 + SCALE_UP_PERCENT_PER_PERIOD / 100.0))
    return max(by_pods, by_percent)


def scale_down_limit(
    current: int, up_events: list[list[float]], down_events: list[list[float]], now_s: float
) -> int:
    """calculateScaleDownLimitWithBehaviors with the default policy (100 % per 15 s)."""
    period_start = current - changes_in_period(up_events, now_s) + changes_in_period(down_events, now_s)
    return math.floor(period_start * (1.0 - SCALE_DOWN_PERCENT_PER_PERIOD / 100.0))


def hpa_step(
    target_per_pod: float,
    observation: ClassObservation,
    pool: PoolState,
    min_replicas: int,
    max_replicas: int,
    memory: Memory | None,
    now_s: float,
) -> tuple[int, str, Memory]:
    """One HPA sync for one pool: (replicas, reason, memory)."""
    previous = memory or {}
    current = pool.desired
    usage = in_flight(observation)
    if usage is None:
        return current, "hpa: no metric, keeping replicas", dict(previous)
    status_replicas = pool.ready_count + pool.starting_count + len(pool.pending_ages_s)
    proposed, usage_ratio = metric_replicas(usage, target_per_pod, status_replicas)
    up_events = [e for e in previous.get("up_events", []) if now_s - e[0] < POLICY_PERIOD_S]
    down_events = [e for e in previous.get("down_events", []) if now_s - e[0] < POLICY_PERIOD_S]
    # A new HPA starts its recommendations with the current replicas (reconcileAutoscaler), so it
    # never scales down before a full window. Then: up window 0 s (take the recommendation), down
    # window 300 s (the max of the recommendations in the window).
    recommendations = previous.get("recommendations") or [[now_s, float(current)]]
    history, window_max = record_windowed_max(recommendations, now_s, proposed, SCALE_DOWN_STABILIZATION_S)
    stabilised = proposed if proposed >= current else min(window_max, current)
    desired = stabilised
    if desired > current:
        limit = max(scale_up_limit(current, up_events, down_events, now_s), current)
        desired = min(desired, limit, max_replicas)
    elif desired < current:
        limit = min(scale_down_limit(current, up_events, down_events, now_s), current)
        desired = max(desired, limit, min_replicas)
    desired = max(min(desired, max_replicas), min_replicas)
    if desired > current:
        up_events.append([now_s, float(desired - current)])
    elif desired < current:
        down_events.append([now_s, float(current - desired)])
    reason = (
        f"hpa: in-flight {usage:.1f} / target {target_per_pod:g} per pod "
        f"(ratio {usage_ratio:.2f}) → {proposed}, applied {desired}"
    )
    new_memory: Memory = {"recommendations": history, "up_events": up_events, "down_events": down_events}
    return desired, reason, new_memory


class HpaPolicy:
    """HPA v2 on an External (KEDA Prometheus) metric with an AverageValue target per pod."""

    name = "hpa"
    interval_s = SYNC_PERIOD_S

    def __init__(self, target_in_flight_per_pod: float = 16.0) -> None:
        if target_in_flight_per_pod <= 0:
            raise ValueError("target_in_flight_per_pod must be positive")
        self.target_in_flight_per_pod = target_in_flight_per_pod

    def params(self) -> dict[str, float]:
        return {"target_in_flight_per_pod": self.target_in_flight_per_pod}

    @staticmethod
    def default_sweep(config: PolicyConfig | None = None) -> list[dict[str, float]]:
        """Targets doubling from 1 in-flight request per pod to all of a replica's batch slots."""
        return [{"target_in_flight_per_pod": target} for target in sweep_targets((config or PolicyConfig()).max_concurrency)]

    def decide(
        self,
        config: PolicyConfig,
        observation: Observation,
        pools: Mapping[str, PoolState],
        memory: Memory,
        now_s: float,
    ) -> Decision:
        pool_bounds = [(INTERACTIVE, observation.interactive, max(config.warm_floor, 1), config.max_replicas)]
        if config.batch.enabled:
            pool_bounds.append((BATCH, observation.batch, 1, config.batch.max_replicas))
        return decide_each_pool(
            hpa_step, self.target_in_flight_per_pod, "hpa: FailedGetExternalMetric, keeping replicas",
            pool_bounds, observation, pools, memory, now_s,
        )
