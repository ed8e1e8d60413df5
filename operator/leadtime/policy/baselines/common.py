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


# The coarsest step between neighbouring sweep targets; the grid aims a little finer so rounding the
# targets to three significant digits never makes a step coarser.
MAX_GRID_RATIO = 1.25


def geometric_grid(low: float, high: float, max_ratio: float = MAX_GRID_RATIO) -> list[float]:
    """Targets from `low` to `high` (both included), evenly spaced in log, neighbours ≤ `max_ratio` apart.

    Geometric, because latency grows non-linearly with the batch: a replica that holds its SLO may
    carry only a few requests in flight while it has hundreds of slots, so the frontier's interesting
    end is at small targets, where a linear grid would have few points.
    """
    if not 0 < low <= high or max_ratio <= 1:
        raise ValueError("a grid needs 0 < low <= high and max_ratio > 1")
    if high == low:
        return [_three_digits(low)]
    steps = math.ceil(math.log(high / low) / math.log(max_ratio * 0.99))
    return sorted({_three_digits(low * (high / low) ** (i / steps)) for i in range(steps + 1)})


def _three_digits(value: float) -> float:
    return float(f"{value:.3g}")


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
