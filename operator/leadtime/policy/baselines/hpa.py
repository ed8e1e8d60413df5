"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) as KEDA's Prometheus scaler drives it, on
three metrics users configure: `hpa` (waiting + running), `keda-waiting` (waiting only) and `hpa-rps`
(request rate).

Re-implemented from kubernetes/kubernetes `pkg/controller/podautoscaler/replica_calculator.go`
(`GetExternalPerPodMetricReplicas`) and `horizontal.go` (`stabilizeRecommendationWithBehaviors`,
`convertDesiredReplicasWithBehaviorRate`, `calculateScaleUpLimitWithScalingRules`,
`calculateScaleDownLimitWithBehaviors`), with the documented defaults:

- KEDA exposes the query (summed over the pods) as an External metric with an `AverageValue` target
  (KEDA's default metricType), so `desired = ceil(metric / target)` unless
  `|metric / (target × statusReplicas) − 1| ≤ tolerance` (`--horizontal-pod-autoscaler-tolerance`,
  default 0.1), in which case the replicas stay;
- the controller syncs every 15 s (`--horizontal-pod-autoscaler-sync-period`);
- scale-up: no stabilisation window; policies `4 Pods / 15 s` and `100 Percent / 15 s`, selectPolicy
  Max (the larger change wins), counted from the replicas at the start of the period;
- scale-down: stabilisation window (`behavior.scaleDown.stabilizationWindowSeconds`, default 300 s:
  the max of the recommendations in the window); policy `100 Percent / 15 s`;
- min/max replicas: the warm floor (at least 1: HPA cannot scale to zero; KEDA's activation would
  handle 0↔1, and with `minReplicaCount ≥ 1` it never acts) and max replicas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial

from leadtime.policy.baselines.common import decide_each_pool, geometric_grid, in_flight
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

# The metric a variant's KEDA query sums over the pods; None when Prometheus has no value for it.
Usage = Callable[[ClassObservation], float | None]


def waiting(observation: ClassObservation) -> float | None:
    """`sum(vllm:num_requests_waiting)`: the queue only, what the vLLM production-stack recipe scales on."""
    return observation.queue_depth


def request_rate(observation: ClassObservation) -> float | None:
    """`sum(rate(...[window]))` of requests: the arrival rate over the metrics window, in rps."""
    return observation.arrival_rate_rps


def metric_replicas(
    usage: float, target_per_pod: float, status_replicas: int, tolerance: float = TOLERANCE
) -> tuple[int, float]:
    """GetExternalPerPodMetricReplicas: (replicas, usage ratio)."""
    if status_replicas <= 0:
        return math.ceil(usage / target_per_pod), math.inf
    usage_ratio = usage / (target_per_pod * status_replicas)
    if abs(1.0 - usage_ratio) <= tolerance:
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
    *,
    usage_of: Usage = in_flight,
    metric: str = "in-flight",
    scale_down_stabilization_s: float = SCALE_DOWN_STABILIZATION_S,
    tolerance: float = TOLERANCE,
) -> tuple[int, str, Memory]:
    """One HPA sync for one pool: (replicas, reason, memory)."""
    previous = memory or {}
    current = pool.desired
    usage = usage_of(observation)
    if usage is None:
        return current, "hpa: no metric, keeping replicas", dict(previous)
    status_replicas = pool.ready_count + pool.starting_count + len(pool.pending_ages_s)
    proposed, usage_ratio = metric_replicas(usage, target_per_pod, status_replicas, tolerance)
    up_events = [e for e in previous.get("up_events", []) if now_s - e[0] < POLICY_PERIOD_S]
    down_events = [e for e in previous.get("down_events", []) if now_s - e[0] < POLICY_PERIOD_S]
    # A new HPA starts its recommendations with the current replicas (reconcileAutoscaler), so it
    # never scales down before a full window. Then: up window 0 s (take the recommendation), down
    # window `scale_down_stabilization_s` (the max of the recommendations in the window).
    recommendations = previous.get("recommendations") or [[now_s, float(current)]]
    history, window_max = record_windowed_max(recommendations, now_s, proposed, scale_down_stabilization_s)
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
        f"hpa: {metric} {usage:.1f} / target {target_per_pod:g} per pod "
        f"(ratio {usage_ratio:.2f}) → {proposed}, applied {desired}"
    )
    new_memory: Memory = {"recommendations": history, "up_events": up_events, "down_events": down_events}
    return desired, reason, new_memory


class _Hpa:
    """HPA v2 on an External (KEDA Prometheus) metric with an AverageValue target per pod; subclasses
    name the metric. The behaviour knobs a user tunes for slow GPU starts are parameters."""

    name = "hpa"
    interval_s = SYNC_PERIOD_S
    target_param = "target"
    metric = "metric"

    def __init__(self, target: float, scale_down_stabilization_s: float, tolerance: float) -> None:
        if not target > 0:
            raise ValueError(f"{self.target_param} must be positive")
        if not scale_down_stabilization_s >= 0:
            raise ValueError("scale_down_stabilization_s must be >= 0")
        if not 0 <= tolerance < 1:
            raise ValueError("tolerance must be in [0, 1)")
        self.target = float(target)
        self.scale_down_stabilization_s = float(scale_down_stabilization_s)
        self.tolerance = float(tolerance)

    @staticmethod
    def usage_of(observation: ClassObservation) -> float | None:
        raise NotImplementedError

    def params(self) -> dict[str, float]:
        return {self.target_param: self.target, "scale_down_stabilization_s": self.scale_down_stabilization_s,
                "tolerance": self.tolerance}

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
        step = partial(hpa_step, usage_of=self.usage_of, metric=self.metric,
                       scale_down_stabilization_s=self.scale_down_stabilization_s, tolerance=self.tolerance)
        return decide_each_pool(
            step, self.target, "hpa: FailedGetExternalMetric, keeping replicas",
            pool_bounds, observation, pools, memory, now_s,
        )


class HpaPolicy(_Hpa):
    """`hpa`: waiting + running requests per pod (`sum(vllm:num_requests_waiting + running)`)."""

    name = "hpa"
    target_param = "target_in_flight_per_pod"
    metric = "in-flight"
    usage_of = staticmethod(in_flight)

    def __init__(self, target_in_flight_per_pod: float = 16.0,
                 scale_down_stabilization_s: float = SCALE_DOWN_STABILIZATION_S,
                 tolerance: float = TOLERANCE) -> None:
        super().__init__(target_in_flight_per_pod, scale_down_stabilization_s, tolerance)

    @property
    def target_in_flight_per_pod(self) -> float:
        return self.target

    @staticmethod
    def default_sweep(config: PolicyConfig | None = None) -> list[dict[str, float]]:
        """In-flight targets from 1 per pod to all of a replica's batch slots, ≤ ×1.25 apart."""
        slots = float(max(1, (config or PolicyConfig()).max_concurrency))
        return [{"target_in_flight_per_pod": t} for t in geometric_grid(1.0, max(slots, 2.0))]


class KedaWaitingPolicy(_Hpa):
    """`keda-waiting`: waiting requests only per pod, the vLLM production-stack / cloud-guide recipe.

    With the queue empty the metric is 0 and HPA recommends the floor, however busy the pods are;
    that is how these setups behave, so it is modelled, not corrected."""

    name = "keda-waiting"
    target_param = "target_waiting_per_pod"
    metric = "waiting"
    usage_of = staticmethod(waiting)

    def __init__(self, target_waiting_per_pod: float = 5.0,
                 scale_down_stabilization_s: float = SCALE_DOWN_STABILIZATION_S,
                 tolerance: float = TOLERANCE) -> None:
        super().__init__(target_waiting_per_pod, scale_down_stabilization_s, tolerance)

    @staticmethod
    def default_sweep(config: PolicyConfig | None = None) -> list[dict[str, float]]:
        """Waiting targets from 0.5 per pod to a replica's batch slots, ≤ ×1.25 apart."""
        slots = float(max(1, (config or PolicyConfig()).max_concurrency))
        return [{"target_waiting_per_pod": t} for t in geometric_grid(0.5, max(slots, 2.0))]


class HpaRpsPolicy(_Hpa):
    """`hpa-rps`: request rate per pod, the reactive analogue of leadtime's own input."""

    name = "hpa-rps"
    target_param = "target_rps_per_pod"
    metric = "rps"
    usage_of = staticmethod(request_rate)

    def __init__(self, target_rps_per_pod: float = 2.0,
                 scale_down_stabilization_s: float = SCALE_DOWN_STABILIZATION_S,
                 tolerance: float = TOLERANCE) -> None:
        super().__init__(target_rps_per_pod, scale_down_stabilization_s, tolerance)

    @staticmethod
    def default_sweep(config: PolicyConfig | None = None) -> list[dict[str, float]]:
        """Rate targets from 0.1× to 2× the user's known replica capacity, ≤ ×1.25 apart."""
        capacity_rps = (config or PolicyConfig()).replica_capacity_rps
        return [{"target_rps_per_pod": t} for t in geometric_grid(0.1 * capacity_rps, 2.0 * capacity_rps)]
