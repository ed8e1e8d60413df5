"""Step: size the batch (spot) pool against its backlog and deadline, with an on-demand fallback."""

from __future__ import annotations

import math
from dataclasses import dataclass

from leadtime.policy.bounds import record_windowed_max
from leadtime.policy.types import BatchConfig, ClassObservation, Memory, PoolDecision, PoolState

# Batch work tolerates waiting, so the pool shrinks as soon as its backlog has stayed small for this
# long — just enough that a brief lull between two batch submissions does not bounce a replica.
BATCH_SCALE_DOWN_DELAY_S = 120.0
# Never plan to drain the backlog in less than this share of the deadline: with a cold start close
# to the deadline the plan would otherwise ask for an absurd number of replicas.
MIN_DRAIN_SHARE_OF_DEADLINE = 0.25


@dataclass(frozen=True)
class BatchPlan:
    spot: PoolDecision
    ondemand: PoolDecision
    memory: Memory


def batch_replicas_needed(
    batch: BatchConfig, observation: ClassObservation, capacity_rps: float, lead_time_s: float
) -> tuple[int, float, float]:
    """(replicas, backlog, drain_time_s): enough to drain backlog + arrivals within the deadline."""
    backlog = (observation.queue_depth or 0.0) + (observation.running or 0.0)
    arrival_rps = observation.arrival_rate_rps or 0.0
    drain_time_s = max(batch.deadline_s - lead_time_s, MIN_DRAIN_SHARE_OF_DEADLINE * batch.deadline_s)
    if backlog <= 0 and arrival_rps <= 0:
        return 0, backlog, drain_time_s
    needed_rps = backlog / drain_time_s + arrival_rps
    return min(math.ceil(needed_rps / capacity_rps - 1e-9), batch.max_replicas), backlog, drain_time_s


def plan_batch(
    batch: BatchConfig,
    observation: ClassObservation,
    spot: PoolState,
    capacity_rps: float,
    lead_time_s: float,
    batch_memory: Memory | None,
    now_s: float,
) -> BatchPlan:
    previous = batch_memory or {}
    needed, backlog, drain_time_s = batch_replicas_needed(batch, observation, capacity_rps, lead_time_s)
    history, spot_replicas = record_windowed_max(
        previous.get("recommendations", []), now_s, needed, BATCH_SCALE_DOWN_DELAY_S
    )
    spot_replicas = min(spot_replicas, batch.max_replicas)
    if needed > 0:
        spot_reason = (
            f"backlog {backlog:.0f} + {observation.arrival_rate_rps or 0.0:.2f} rps within "
            f"{drain_time_s:.0f} s needs {needed} spot replicas"
        )
    else:
        spot_reason = "no batch backlog"
    if spot_replicas > needed:
        spot_reason += f"; holding {spot_replicas} for {BATCH_SCALE_DOWN_DELAY_S:.0f} s before scaling down"

    stuck_pending = sum(1 for age_s in spot.pending_ages_s if age_s >= batch.fallback_after_pending_s)
    spot_on_the_way = spot.ready_count + spot.starting_count
    deadline_at_risk = needed > spot_on_the_way
    previous_ondemand = int(previous.get("ondemand_replicas", 0))
    ondemand_replicas = 0
    ondemand_reason = "spot capacity sufficient"
    if batch.fallback_enabled and needed > 0:
        if stuck_pending > 0 and deadline_at_risk:
            shortfall = needed - spot_on_the_way
            ondemand_replicas = min(batch.fallback_max_replicas, max(shortfall, previous_ondemand))
            ondemand_reason = (
                f"{stuck_pending} spot pods pending ≥ {batch.fallback_after_pending_s:.0f} s and the "
                f"deadline is at risk: {ondemand_replicas} on-demand replicas"
            )
        elif previous_ondemand > 0:
            # Spot is back (nothing stuck): hand the work back only as spot replicas become Ready.
            ondemand_replicas = min(previous_ondemand, max(needed - spot.ready_count, 0))
            ondemand_reason = (
                f"spot is back; keeping {ondemand_replicas} on-demand replicas until spot is Ready"
                if ondemand_replicas
                else "spot is back; returning batch work to spot"
            )
    memory: Memory = {"recommendations": history, "ondemand_replicas": ondemand_replicas}
    return BatchPlan(
        spot=PoolDecision(spot_replicas, spot_reason),
        ondemand=PoolDecision(ondemand_replicas, ondemand_reason),
        memory=memory,
    )
