"""Step: learn how many requests/s one replica sustains within the SLO, starting from the prior."""

from __future__ import annotations

from dataclasses import dataclass

from leadtime.policy.types import ClassObservation, Memory, PolicyConfig

# The learned capacity stays within this factor of the prior: the prior comes from the user (or a
# profile) and a few minutes of odd traffic must not convince the policy that a replica is 10x faster.
CAPACITY_BOUND_FACTOR = 3.0
# Little's law only says something about saturation throughput when the batch is reasonably full;
# at light load service is faster than at full batch and the estimate would be optimistic.
LITTLE_MIN_BATCH_FILL = 0.6
LITTLE_LEARNING_RATE = 0.05
# When the SLO breaks with a queue at a per-replica load below the estimate, the estimate was too
# high: cut it by at most this fraction per decision, so a transient burst does not erase it.
OVERLOAD_MAX_CUT = 0.05


@dataclass(frozen=True)
class CapacityEstimate:
    rps_per_replica: float
    source: str  # "prior", "learned"


def learn_capacity(
    config: PolicyConfig,
    interactive: ClassObservation,
    ready_replicas: int,
    capacity_memory: Memory | None,
) -> tuple[CapacityEstimate, Memory]:
    """Update the per-replica capacity from what the ready replicas just did.

    - healthy and busy (p95 within SLO, batch at least 60% full, little queue): Little's law gives the
      service time `running / throughput`, so a full batch of `max_concurrency` completes
      `max_concurrency / service_time_s` requests/s; move the estimate a little toward it, and never
      below the throughput just served (it was sustained within the SLO);
    - overloaded (p95 over SLO with a queue) at a per-replica load below the estimate: the estimate
      is too high; cut it toward that load.
    """
    prior_rps = config.replica_capacity_rps
    previous = capacity_memory or {}
    estimate_rps = float(previous.get("rps_per_replica", prior_rps))
    learned = bool(previous.get("learned", False))
    arrival_rps = interactive.arrival_rate_rps
    running = interactive.running
    queue_depth = interactive.queue_depth or 0.0
    p95_latency_s = interactive.p95_latency_s
    if ready_replicas >= 1 and arrival_rps is not None and arrival_rps > 0 and p95_latency_s is not None:
        per_replica_rps = arrival_rps / ready_replicas
        little_queue = queue_depth <= 0.05 * ready_replicas * config.max_concurrency
        if p95_latency_s <= config.slo_p95_s and little_queue and running is not None:
            batch_fill = running / (ready_replicas * config.max_concurrency)
            if batch_fill >= LITTLE_MIN_BATCH_FILL:
                service_time_s = running / arrival_rps
                little_rps = config.max_concurrency / service_time_s
                estimate_rps += LITTLE_LEARNING_RATE * (little_rps - estimate_rps)
                # A busy pool just served this much per replica within the SLO.
                estimate_rps = max(estimate_rps, per_replica_rps)
                learned = True
        elif (
            p95_latency_s > config.slo_p95_s
            and queue_depth > ready_replicas
            and per_replica_rps < estimate_rps
        ):
            estimate_rps = max(per_replica_rps, estimate_rps * (1.0 - OVERLOAD_MAX_CUT))
            learned = True
    estimate_rps = min(
        max(estimate_rps, prior_rps / CAPACITY_BOUND_FACTOR), prior_rps * CAPACITY_BOUND_FACTOR
    )
    memory: Memory = {"rps_per_replica": estimate_rps, "learned": learned}
    return CapacityEstimate(estimate_rps, "learned" if learned else "prior"), memory
