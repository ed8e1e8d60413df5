"""What the baselines share: reading the in-flight metric and answering when metrics fail."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from leadtime.policy.types import (
    ClassObservation,
    Decision,
    Memory,
    Observation,
    PoolDecision,
    PoolState,
)

# One sync of a baseline for one pool: (target, class metrics, pool, min, max, memory, now_s) ->
# (replicas, reason, new memory for that pool).
PoolStep = Callable[[float, ClassObservation, PoolState, int, int, Memory | None, float], tuple[int, str, Memory]]

# A baseline keeps its replicas when the metrics are unavailable, like HPA when the metrics API
# errors ("FailedGetExternalMetric": no rescale) and Knative when it has no data (invalid scale).
STALE_AFTER_S = 60.0


def in_flight(observation: ClassObservation) -> float | None:
    """Requests waiting plus running, summed over the pods (what KEDA's query and Knative's
    queue-proxy concurrency both measure); None when neither is known."""
    if observation.queue_depth is None and observation.running is None:
        return None
    return (observation.queue_depth or 0.0) + (observation.running or 0.0)


def sweep_targets(max_concurrency: int) -> list[float]:
    """Per-pod targets to sweep, doubling from 1 in-flight request to all of a replica's slots.

    Geometric, because latency grows non-linearly with the batch: a replica that holds its SLO may
    carry only a few requests in flight while it has hundreds of slots, so the frontier's interesting
    end is at small targets. At least six points, so a short slot count still shows a frontier.
    """
    top = max(1.0, float(max_concurrency))
    doublings = max(5, math.ceil(math.log2(top)))
    return sorted({round(top ** (i / doublings), 1) for i in range(doublings + 1)})


def usable(observation: Observation) -> bool:
    return observation.available and observation.stale_s <= STALE_AFTER_S


def decide_each_pool(
    step: PoolStep,
    target: float,
    held_reason: str,
    pool_bounds: Sequence[tuple[str, ClassObservation, int, int]],
    observation: Observation,
    pools: Mapping[str, PoolState],
    memory: Memory,
    now_s: float,
) -> Decision:
    """Run a baseline's step for each (pool, class metrics, min, max); hold every pool within its bounds
    when the metrics cannot be used. Each pool's memory is kept under the pool's name."""
    decisions: dict[str, PoolDecision] = {}
    new_memory: Memory = dict(memory or {})
    for pool_name, class_observation, min_replicas, max_replicas in pool_bounds:
        pool = pools.get(pool_name, PoolState())
        if not usable(observation):
            held = max(min(pool.desired, max_replicas), min_replicas)
            decisions[pool_name] = PoolDecision(held, held_reason)
            continue
        replicas, reason, new_memory[pool_name] = step(
            target, class_observation, pool, min_replicas, max_replicas, new_memory.get(pool_name), now_s
        )
        decisions[pool_name] = PoolDecision(replicas, reason)
    return Decision(pools=decisions, memory=new_memory, held=not usable(observation))
