"""The pods of each pool: created, cold start, Ready, terminating (draining), gone; and their bill.

A pod bills from creation (or, for a spot pod left Pending, from when a node was found) until it
exits. Scale-down picks victims in Kubernetes' order (unscheduled, then not Ready, then the newest
Ready); a Ready victim terminates gracefully: it leaves the Deployment's count at once (it is neither
Ready, starting nor desired for the policy) and bills until its drain ends (see `fluid.start_drain`).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from leadtime.policy.types import BATCH, PoolState, ReadyPod
from leadtime.replica import ReplicaProfile


@dataclass
class Replica:
    created_s: float
    cold_start_s: float
    ready_at_s: float
    scheduled: bool = True  # False while Pending (no spot capacity): not billed, not starting


@dataclass(frozen=True)
class SpotTrace:
    """Spot instances obtainable over time: `counts[i]` from `i * gap_s` on, repeating after the last."""

    gap_s: float
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.gap_s <= 0 or not self.counts or min(self.counts) < 0:
            raise ValueError("a spot trace needs gap_seconds > 0 and one or more counts >= 0")

    def at(self, t_s: float) -> int:
        return self.counts[int(t_s // self.gap_s) % len(self.counts)]


def load_spot_trace(path: str | Path) -> SpotTrace:
    """Read `{"metadata": {"gap_seconds": N}, "data": [1, 1, 0, ...]}` (obtainable spot instances)."""
    doc = json.loads(Path(path).read_text())
    try:
        return SpotTrace(float(doc["metadata"]["gap_seconds"]), tuple(int(c) for c in doc["data"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a spot trace ({err})") from None


def synthesize_spot_trace(seed: int, span_s: float, instances: int, *, held_share: float = 0.55,
                          reacquisitions_per_day: float = 6.85, gap_s: float = 60.0) -> SpotTrace:
    """Each of `instances` spot instances held and lost in turns, with exponential spells.

    Defaults are the middle of the published ranges (a spot GPU held 31-79 % of the time, 5.6-8.1
    re-acquisitions a day per zone): one cycle lasts a day over the re-acquisitions, of which the held
    spell is `held_share`.
    """
    rng = random.Random(seed)
    cycle_s = 86400.0 / reacquisitions_per_day
    n = max(1, math.ceil(span_s / gap_s))
    counts = [0] * n
    for _ in range(instances):
        t, held = 0.0, rng.random() < held_share
        while t < span_s:
            spell_s = rng.expovariate(1.0 / (cycle_s * (held_share if held else 1.0 - held_share)))
            if held:
                for i in range(int(t // gap_s), min(n, math.ceil((t + spell_s) / gap_s))):
                    counts[i] += 1
            t += spell_s
            held = not held
    return SpotTrace(gap_s, tuple(min(c, instances) for c in counts))


class Pods:
    """Every pool's pods; `drain(pool, now, grace_s)` is called for each Ready victim and returns its exit time."""

    def __init__(self, pools: tuple[str, ...], profile: ReplicaProfile, *, seed: int, epoch_s: float,
                 end_s: float, spot_capacity: int | None, drain: Callable[[str, float, float], float],
                 grace_s: float = math.inf, spot_trace: SpotTrace | None = None,
                 spot_notice_s: float = 120.0) -> None:
        self.profile = profile
        self.rng = random.Random(seed)  # same cold-start draws, in creation order, for every policy
        self.epoch_s = epoch_s
        self.end_s = end_s
        self.spot_capacity = spot_capacity
        self.spot_trace = spot_trace
        self.spot_notice_s = spot_notice_s
        self.grace_s = grace_s
        self.drain = drain
        self.preempted = 0  # batch replicas given a preemption notice
        self.gpus = profile.gpus_per_replica
        self.replicas: dict[str, list[Replica]] = {pool: [] for pool in pools}
        self.desired = {pool: 0 for pool in pools}
        self.billed_gpu_s = {pool: 0.0 for pool in pools}
        self.scale_events = 0
        # (ready, starting, billed, next ready_at) per pool, recomputed only when a pod changes state.
        self._counts: dict[str, tuple[int, int, int, float]] = {}
        # Per pool: (version, next ready_at, ready pods, starting created_s, pending created_s).
        self._states: dict[str, tuple[int, float, tuple, tuple, tuple]] = {}
        self._version = {pool: 0 for pool in pools}

    def counts(self, pool: str, now: float) -> tuple[int, int, int]:
        """(Ready, starting, billed) pods of the pool, draining ones excluded."""
        cached = self._counts.get(pool)
        if cached is None or now >= cached[3]:
            ready = starting = billed = 0
            next_ready = math.inf
            for r in self.replicas[pool]:
                if r.scheduled:
                    billed += 1
                    if r.ready_at_s <= now:
                        ready += 1
                    else:
                        starting += 1
                        next_ready = min(next_ready, r.ready_at_s)
            cached = self._counts[pool] = (ready, starting, billed, next_ready)
        return cached[0], cached[1], cached[2]

    def start_ready(self, pool: str, n: int) -> None:
        """The deployment existed before the trace: `n` pods Ready at time 0, no cold start drawn."""
        self.replicas[pool] = [Replica(created_s=0.0, cold_start_s=0.0, ready_at_s=0.0) for _ in range(n)]
        self.desired[pool] = n
        self._changed(pool)

    def _changed(self, pool: str) -> None:
        self._counts.pop(pool, None)
        self._version[pool] += 1

    def apply(self, pool: str, target: int, now: float) -> None:
        """Set the pool's desired replicas: create pods, or terminate victims in Kubernetes' order."""
        target = max(0, int(target))
        pods = self.replicas[pool]
        if target == self.desired[pool] == len(pods) and (pool != BATCH or not self.spot_limited):
            return  # nothing to do: keep the cached counts and pool state (most control intervals)
        self._changed(pool)
        if target != self.desired[pool]:
            self.scale_events += 1
            self.desired[pool] = target
        while len(pods) < target:
            cold = max(0.0, self.profile.cold_start.sample_s(self.rng))
            pods.append(Replica(created_s=now, cold_start_s=cold, ready_at_s=now + cold))
        if len(pods) > target:
            # Kubernetes removes unscheduled pods first, then not-ready ones, then the newest Ready ones.
            pods.sort(key=lambda r: (not r.scheduled, r.ready_at_s > now, r.ready_at_s), reverse=True)
            while len(pods) > target:
                victim = pods.pop(0)
                if not victim.scheduled:
                    continue
                # A Ready victim bills until its drain ends; that end is known now (fluid.start_drain).
                exit_s = self.drain(pool, now, self.grace_s) if victim.ready_at_s <= now else now
                self.billed_gpu_s[pool] += (min(exit_s, self.end_s) - victim.created_s) * self.gpus
            pods.sort(key=lambda r: r.created_s)
        if pool == BATCH and self.spot_limited:
            self.reconcile_spot(now)
        self._counts.pop(pool, None)

    @property
    def spot_limited(self) -> bool:
        return self.spot_capacity is not None or self.spot_trace is not None

    def spot_obtainable(self, now: float) -> int | None:
        """Spot instances the market gives the batch pool now (None: unlimited)."""
        caps = [c for c in (self.spot_capacity, self.spot_trace.at(now) if self.spot_trace else None) if c is not None]
        return min(caps) if caps else None

    def reconcile_spot(self, now: float) -> None:
        """Fit the batch pool's scheduled pods to the spot instances obtainable now.

        Pending pods are scheduled while instances are free; beyond the instances, starting pods go
        back to Pending first (their node is gone before they served), then Ready ones are preempted:
        each gets the market's notice as its grace period, drains, and its ReplicaSet recreates it
        Pending, so the Deployment's count is unchanged and the work left at the deadline re-queues.
        """
        capacity = self.spot_obtainable(now)
        if capacity is None:
            return
        pods = self.replicas[BATCH]
        scheduled = sum(1 for r in pods if r.scheduled)
        for r in pods:
            if not r.scheduled and scheduled < capacity:
                # Scheduled now: billing and the cold start begin when a node is found.
                r.scheduled, r.created_s, r.ready_at_s = True, now, now + r.cold_start_s
                scheduled += 1
        if scheduled > capacity:
            for r in sorted((r for r in pods if r.scheduled and r.ready_at_s > now), key=lambda r: -r.created_s):
                if scheduled <= capacity:
                    break
                self.billed_gpu_s[BATCH] += (now - r.created_s) * self.gpus
                r.scheduled = False
                scheduled -= 1
            ready = sorted((r for r in pods if r.scheduled and r.ready_at_s <= now), key=lambda r: -r.ready_at_s)
            for victim in ready[: max(0, scheduled - capacity)]:
                pods.remove(victim)
                exit_s = self.drain(BATCH, now, min(self.grace_s, self.spot_notice_s))
                self.billed_gpu_s[BATCH] += (min(exit_s, self.end_s) - victim.created_s) * self.gpus
                cold = max(0.0, self.profile.cold_start.sample_s(self.rng))
                pods.append(Replica(created_s=now, cold_start_s=cold, ready_at_s=now + cold, scheduled=False))
                self.preempted += 1
        self._changed(BATCH)

    def pool_state(self, pool: str, now: float) -> PoolState:
        """What the Kubernetes API shows the policy; terminating pods are in none of its fields."""
        cached = self._states.get(pool)
        if cached is None or cached[0] != self._version[pool] or now >= cached[1]:
            ready, starting, pending = [], [], []
            next_ready = math.inf
            for r in self.replicas[pool]:
                if not r.scheduled:
                    pending.append(r.created_s)
                elif r.ready_at_s <= now:
                    ready.append(ReadyPod(ready_at_s=r.ready_at_s + self.epoch_s, cold_start_s=r.cold_start_s))
                else:
                    starting.append(r.created_s)
                    next_ready = min(next_ready, r.ready_at_s)
            cached = self._states[pool] = (self._version[pool], next_ready, tuple(ready), tuple(starting),
                                           tuple(pending))
        _, _, ready_pods, starting_created, pending_created = cached
        return PoolState(desired=self.desired[pool], ready=ready_pods,
                         starting_ages_s=tuple(now - c for c in starting_created),
                         pending_ages_s=tuple(now - c for c in pending_created))

    def settle(self) -> dict[str, float]:
        """Bill the pods still running at the end of the trace; returns GPU-seconds per pool."""
        for pool, pods in self.replicas.items():
            for r in pods:
                if r.scheduled:
                    self.billed_gpu_s[pool] += (self.end_s - r.created_s) * self.gpus
        return self.billed_gpu_s
