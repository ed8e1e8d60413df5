"""`oracle`: the clairvoyant lower bound. It reads the future arrivals and the true cold start.

For every tick it knows the replicas the replica model needs (the next `SMOOTH_S` seconds of arrivals at
`UTILISATION` of the saturation throughput for that tick's tokens, or the batch that keeps e2e within the
SLO); at time t it asks for the most needed anywhere in [t, t + cold start], so each replica is created
exactly one cold start before it is needed and deleted as soon as nothing needs it within a cold start.
Only the simulator can build it: the operator never has the future.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from leadtime.policy.types import (
    BATCH,
    INTERACTIVE,
    Decision,
    Memory,
    Observation,
    PolicyConfig,
    PoolDecision,
    PoolState,
)
from leadtime.replica import ReplicaProfile
from leadtime.sim.engine import EPOCH_S
from leadtime.sim.traces import Arrivals, ClassArrivals

SMOOTH_S = 10.0  # arrivals are sized over 10-s windows: a replica absorbs shorter bursts in its queue
UTILISATION = 0.9  # keep 10% headroom so a window at exactly the mean rate does not queue


def _round2(values: np.ndarray) -> np.ndarray:
    magnitude = 10.0 ** np.floor(np.log10(np.maximum(values, 1.0)) - 1)
    return np.round(values / magnitude) * magnitude


def needed_replicas(cls: ClassArrivals, profile: ReplicaProfile, tick_s: float, slo_metric: str,
                    slo_p95_s: float) -> np.ndarray:
    """Replicas the true replica model needs per tick for the arrivals of the next SMOOTH_S seconds."""
    width = max(1, round(SMOOTH_S / tick_s))
    counts = cls.count.astype(float)
    padded = np.concatenate([counts, np.zeros(width)])
    sums = np.convolve(padded, np.ones(width), mode="valid")[: len(counts)]
    rate = sums / (width * tick_s)
    busy = counts > 0
    inp = np.where(busy, cls.input_tokens, 0.0)
    out = np.where(busy, cls.output_tokens, 0.0)
    # Tokens vary slowly: size per distinct (in, out) rounded to 2 significant digits, with the batch
    # the SLO allows (the slot/KV limit for ttft; smaller if e2e would exceed 80% of the target).
    capacity = np.ones(len(counts))
    keys = np.stack([_round2(inp), _round2(out)], axis=1)
    if busy.any():
        unique, inverse = np.unique(keys[busy], axis=0, return_inverse=True)
        per_key = np.empty(len(unique))
        for index, (i, o) in enumerate(unique):
            batch = profile.max_concurrency(i, o)
            if slo_metric == "e2e":
                while batch > 1 and profile.latency_at(i, o, batch)[1] > 0.8 * slo_p95_s:
                    batch = max(1, int(batch * 0.9))
            per_key[index] = profile.throughput_rps(i, o, batch) * UTILISATION
        capacity[busy] = per_key[inverse.reshape(-1)]
    return np.ceil(rate / capacity)


def window_max(values: np.ndarray, width: int) -> np.ndarray:
    """max(values[t : t + width]) for every t (the future window)."""
    if width <= 1:
        return values.copy()
    table = np.concatenate([values, np.zeros(width - 1)])
    span = 1
    # Doubling: table[t] = max over [t, t + span); then two overlapping spans cover the width.
    while span * 2 <= width:
        table = np.maximum(table[:-span], table[span:])
        span *= 2
    tail = width - span
    return np.maximum(table[: len(values)], table[tail : tail + len(values)])


class OraclePolicy:
    """Replica targets read from the future: `max need over [t, t + cold start]` per pool."""

    name = "oracle"
    interval_s = 1.0

    def __init__(self, arrivals: Arrivals, profile: ReplicaProfile, slo_metric: str, slo_p95_s: float,
                 epoch_s: float = EPOCH_S) -> None:
        self.epoch_s = epoch_s
        self.tick_s = arrivals.tick_s
        self.interval_s = arrivals.tick_s
        # A lognormal cold start is known only in distribution: plan for its p95.
        lead_ticks = max(1, math.ceil(profile.cold_start.quantile_s(0.95) / arrivals.tick_s) + 1)
        self.lead_s = profile.cold_start.quantile_s(0.95)
        self.targets = {}
        for pool, name in ((INTERACTIVE, "interactive"), (BATCH, "batch")):
            cls = arrivals.classes[name]
            if cls.total == 0 and pool == BATCH:
                continue
            need = needed_replicas(cls, profile, arrivals.tick_s, slo_metric, slo_p95_s)
            self.targets[pool] = window_max(need, lead_ticks).astype(int)

    def params(self) -> dict[str, float]:
        return {"lead_s": round(self.lead_s, 1)}

    def decide(self, config: PolicyConfig, observation: Observation, pools: Mapping[str, PoolState],
               memory: Memory, now_s: float) -> Decision:
        tick = int(round((now_s - self.epoch_s) / self.tick_s))
        decisions = {}
        for pool, target in self.targets.items():
            replicas = max(int(target[min(tick, len(target) - 1)]), 1 if pool == INTERACTIVE else 0)
            decisions[pool] = PoolDecision(replicas, f"oracle: {replicas} replicas needed within one cold start")
        return Decision(pools=decisions, memory={})


def peak_replicas(arrivals: Arrivals, profile: ReplicaProfile, slo_metric: str, slo_p95_s: float) -> int:
    """The oracle's peak interactive need: what a peak-provisioned static deployment runs."""
    need = needed_replicas(arrivals.classes["interactive"], profile, arrivals.tick_s, slo_metric, slo_p95_s)
    return max(1, int(need.max()) if len(need) else 1)
