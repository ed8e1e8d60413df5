"""Step: learn the lead time — how long a new replica really takes from creation to Ready."""

from __future__ import annotations

import math
from collections.abc import Sequence

from leadtime.policy.types import Memory, PoolState

# Enough start→Ready samples before the learned P90 replaces the configured prior: with fewer, one
# fast or slow start would swing the horizon by minutes.
MIN_COLD_START_SAMPLES = 3
# Keep the most recent starts only: the cluster changes (images cached, nodes warmed) and the status
# object the memory lives in must stay small.
MAX_COLD_START_SAMPLES = 50
LEAD_TIME_QUANTILE = 0.9


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of no values")
    position = q * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def learn_lead_time(
    pool: PoolState, pool_memory: Memory | None, cold_start_prior_s: float
) -> tuple[float, Memory, str]:
    """Record new start→Ready durations of `pool` and return (lead_time_s, new pool memory, source).

    Pods are de-duplicated with a high-water mark on `ready_at_s`: a pod is a new sample only when it
    became Ready after the newest one already recorded. A duration of zero is no measurement (a pod
    that existed before anyone watched it starting) and is skipped. A pod still starting is a
    censored sample: its start takes at least its age, so the lead time is never below the oldest
    starting pod's age (a 10-minute cold start is noticed after one minute, not after three starts).
    """
    previous = pool_memory or {}
    high_water_s = previous.get("ready_high_water_s")
    samples_s = list(previous.get("samples_s", []))
    new_pods = sorted(
        (pod for pod in pool.ready if high_water_s is None or pod.ready_at_s > high_water_s),
        key=lambda pod: pod.ready_at_s,
    )
    for pod in new_pods:
        if pod.cold_start_s > 0 and math.isfinite(pod.cold_start_s):
            samples_s.append(float(pod.cold_start_s))
        high_water_s = pod.ready_at_s if high_water_s is None else max(high_water_s, pod.ready_at_s)
    samples_s = samples_s[-MAX_COLD_START_SAMPLES:]
    memory: Memory = {"ready_high_water_s": high_water_s, "samples_s": samples_s}
    if len(samples_s) >= MIN_COLD_START_SAMPLES:
        lead_time_s, source = quantile(samples_s, LEAD_TIME_QUANTILE), f"P90 of {len(samples_s)} starts"
    else:
        lead_time_s, source = cold_start_prior_s, "prior"
    oldest_starting_s = max(pool.starting_ages_s, default=0.0)
    if oldest_starting_s > lead_time_s:
        return oldest_starting_s, memory, f"a pod still starting after {oldest_starting_s:.0f} s"
    return lead_time_s, memory, source
