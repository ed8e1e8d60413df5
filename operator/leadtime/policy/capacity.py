"""Step: learn how many requests/s one replica sustains within the SLO, starting from the prior."""

from __future__ import annotations

import math
from dataclasses import dataclass

from leadtime.policy.types import ClassObservation, Memory, PolicyConfig

# The learned capacity stays within this factor of the prior: the prior comes from the user (or a
# profile) and a few minutes of odd traffic must not convince the policy that a replica is 10x faster.
CAPACITY_BOUND_FACTOR = 3.0
# Little's law only says something about saturation throughput when the batch is nearly full: a
# continuous-batching replica slows down as its batch grows (each decode step reads every sequence's
# KV cache), so the service time at 60 % fill is ~2/3 of the full-batch one and extrapolating from
# there overestimated capacity by ~1.5x. At 85 % fill the overestimate is ~10 %.
LITTLE_MIN_BATCH_FILL = 0.85
LITTLE_LEARNING_RATE = 0.05
# When the queue keeps growing at a per-replica load below the estimate, the estimate was too high:
# cut it by at most this fraction per decision, so a transient burst does not erase it.
OVERLOAD_MAX_CUT = 0.05
# Evidence counts once the pool has kept its state this long: one Prometheus window (rate() and
# histogram_quantile() over the last minute), so the rates and the p95 describe that state only.
STEADY_FOR_S = 60.0
# A queue below this share of the pool's slots is "small" (a healthy pool queues almost nothing).
SMALL_QUEUE_SHARE = 0.02
# Cuts are evidence about an overload, often a burst shorter than the metrics window. Once no overload
# has been seen for `RECOVERY_QUIET_S` (bursts that recur within hours keep their evidence) and the pool
# stays healthy — p95 under `RECOVERY_P95_SHARE` of the SLO while each replica carries at least
# `RECOVERY_MIN_LOAD_SHARE` of the estimate — the estimate drifts back toward the prior with
# `RECOVERY_TIME_CONSTANT_S`. Without it the bursts of one day lowered the estimate for good (a
# 14-day trace ran its last 13 days at 65 % of the prior with p95 at 2 % of the SLO). Recovery never
# goes above the prior; slack (below) does that.
RECOVERY_P95_SHARE = 0.5
RECOVERY_MIN_LOAD_SHARE = 0.5
RECOVERY_TIME_CONSTANT_S = 600.0
RECOVERY_QUIET_S = 6 * 3600.0
# Slack: a pool that carries close to the estimate per replica (`SLACK_MIN_LOAD_SHARE`) with its p95
# at most `SLACK_P95_SHARE` of the SLO for a whole window can carry more within the SLO. The estimate
# then grows above the prior, by e per `SLACK_TIME_CONSTANT_S` (3.4 % a minute), and stops where the
# p95 reaches half the SLO. Little's law cannot show this when a replica is prefill-bound (its batch
# is never near full: Mooncake runs 3-4 of 34 slots), and a prior taken from a replica's throughput
# is conservative whenever the SLO tolerates some queueing. The growth is a probe: any p95 over the
# SLO takes the estimate back to the prior at once, and the probe waits `SLACK_QUIET_S` before
# trying again, so traffic with sub-minute bursts (p95 far under the SLO until a burst) does not
# keep buying its misses.
SLACK_P95_SHARE = 0.5
SLACK_MIN_LOAD_SHARE = 0.7
SLACK_TIME_CONSTANT_S = 1800.0
SLACK_QUIET_S = 3600.0


@dataclass(frozen=True)
class CapacityEstimate:
    rps_per_replica: float
    source: str  # "prior", "learned"


def learn_capacity(
    config: PolicyConfig,
    interactive: ClassObservation,
    ready_replicas: int,
    capacity_memory: Memory | None,
    now_s: float,
) -> tuple[CapacityEstimate, Memory]:
    """Update the per-replica capacity from what the ready replicas just did.

    Prometheus reports windowed rates and percentiles, so evidence only counts once the pool has been
    in the same state for a whole metrics window (`STEADY_FOR_S`): same ready replicas, and a queue
    that is either small throughout (healthy) or growing throughout (overloaded).

    - healthy and busy (p95 within SLO, batch at least 60% full): Little's law gives the service time
      `running / throughput`, so a full batch of `max_concurrency` completes
      `max_concurrency / service_time_s` requests/s; move the estimate a little toward it;
    - overloaded for a whole window with the same ready replicas — the queue kept growing (the
      replicas complete fewer requests/s than arrive), or the p95 broke the SLO without a queue
      (e.g. long prompts contending for prefill): the capacity *within the SLO* is below
      `arrival / ready`; cut the estimate toward that load, by at most `OVERLOAD_MAX_CUT` per decision;
    - healthy with p95 well under the SLO, busy, and no overload for `RECOVERY_QUIET_S`: drift back toward
      the prior (never above it), so the overloads of one day do not price every later day;
    - at or above the prior, the same healthy pool carrying most of the estimate, with no p95 over the
      SLO for `SLACK_QUIET_S` (slack): grow the estimate slowly; a p95 over the SLO, steady or not,
      takes any growth above the prior back at once.
    """
    prior_rps = config.replica_capacity_rps
    previous = capacity_memory or {}
    estimate_rps = float(previous.get("rps_per_replica", prior_rps))
    learned = bool(previous.get("learned", False))
    last_overload_s = previous.get("last_overload_s")  # None: never (memory is JSON: no -inf)
    last_breach_s = previous.get("last_breach_s")  # the last p95 over the SLO; None: never
    arrival_rps = interactive.arrival_rate_rps
    running = interactive.running
    queue_depth = interactive.queue_depth
    p95_latency_s = interactive.p95_latency_s
    slots = ready_replicas * config.max_concurrency
    small_queue = queue_depth is not None and queue_depth <= max(1.0, SMALL_QUEUE_SHARE * slots)
    previous_queue = previous.get("queue_depth")
    growing_queue = (
        queue_depth is not None
        and previous_queue is not None
        and queue_depth > previous_queue
        and not small_queue
    )
    slo_broken = p95_latency_s is not None and p95_latency_s > config.slo_p95_s
    if growing_queue or (slo_broken and small_queue):
        state = "overloaded"
    else:
        state = "healthy" if small_queue else "other"
    if slo_broken:
        # One window over the SLO is enough to end a slack probe: no steady state needed, since the
        # bursts the probe risks are shorter than a window.
        last_breach_s = now_s
        estimate_rps = min(estimate_rps, prior_rps)
    quiet_since_overload = last_overload_s is None or now_s - float(last_overload_s) >= RECOVERY_QUIET_S
    same_state = previous.get("state") == state and previous.get("ready_replicas") == ready_replicas
    state_since_s = float(previous.get("state_since_s", now_s)) if same_state else now_s
    steady = now_s - state_since_s >= STEADY_FOR_S
    if steady and ready_replicas >= 1 and arrival_rps is not None and arrival_rps > 0:
        per_replica_rps = arrival_rps / ready_replicas
        if (
            state == "healthy"
            and running is not None
            and p95_latency_s is not None
            and p95_latency_s <= config.slo_p95_s
            and running / slots >= LITTLE_MIN_BATCH_FILL
        ):
            service_time_s = running / arrival_rps
            little_rps = config.max_concurrency / service_time_s
            estimate_rps += LITTLE_LEARNING_RATE * (little_rps - estimate_rps)
            learned = True
        elif state == "overloaded":
            last_overload_s = now_s
            if per_replica_rps < estimate_rps:
                estimate_rps = max(per_replica_rps, estimate_rps * (1.0 - OVERLOAD_MAX_CUT))
                learned = True
        elif state == "healthy" and quiet_since_overload and p95_latency_s is not None:
            elapsed_s = max(now_s - float(previous.get("at_s", now_s)), 0.0)
            p95_share = p95_latency_s / config.slo_p95_s
            load_share = per_replica_rps / estimate_rps
            if (
                estimate_rps < prior_rps
                and p95_share <= RECOVERY_P95_SHARE
                and load_share >= RECOVERY_MIN_LOAD_SHARE
            ):
                weight = 1.0 - math.exp(-elapsed_s / RECOVERY_TIME_CONSTANT_S)
                estimate_rps += weight * (prior_rps - estimate_rps)
            elif (
                estimate_rps >= prior_rps
                and (last_breach_s is None or now_s - float(last_breach_s) >= SLACK_QUIET_S)
                and p95_share <= SLACK_P95_SHARE
                and load_share >= SLACK_MIN_LOAD_SHARE
            ):
                # A window's evidence speaks for one window: after a gap (the operator was down),
                # the first decision must not compound the whole gap into growth.
                estimate_rps *= math.exp(min(elapsed_s, STEADY_FOR_S) / SLACK_TIME_CONSTANT_S)
                learned = True
    estimate_rps = min(
        max(estimate_rps, prior_rps / CAPACITY_BOUND_FACTOR), prior_rps * CAPACITY_BOUND_FACTOR
    )
    memory: Memory = {
        "rps_per_replica": estimate_rps,
        "learned": learned,
        "state": state,
        "state_since_s": state_since_s,
        "ready_replicas": ready_replicas,
        "queue_depth": queue_depth,
        "at_s": now_s,
        "last_overload_s": last_overload_s,
        "last_breach_s": last_breach_s,
    }
    return CapacityEstimate(estimate_rps, "learned" if learned else "prior"), memory
