"""The pods of each pool: created, cold start, Ready, terminating (draining), gone; and their bill.

A pod bills from creation (or, for a spot pod left Pending, from when a node was found) until it
exits. Scale-down picks victims in Kubernetes' order (unscheduled, then not Ready, then the newest
Ready); a Ready victim terminates gracefully: it leaves the Deployment's count at once (it is neither
Ready, starting nor desired for the policy) and bills until its drain ends (see `fluid.start_drain`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from leadtime.policy.types import BATCH, PoolState, ReadyPod
from leadtime.replica import ReplicaProfile


@dataclass
class Replica:
    created_s: float
    cold_start_s: float
    ready_at_s: float
    scheduled: bool = True  # False while Pending (no spot capacity): not billed, not starting


class Pods:
    """Every pool's pods; `drain(pool, now)` is called for each Ready victim and returns its exit time."""

    def __init__(self, pools: tuple[str, ...], profile: ReplicaProfile, *, seed: int, epoch_s: float,
                 end_s: float, spot_capacity: int | None, drain: Callable[[str, float], float]) -> None:
        self.profile = profile
        self.rng = random.Random(seed)  # same cold-start draws, in creation order, for every policy
        self.epoch_s = epoch_s
        self.end_s = end_s
        self.spot_capacity = spot_capacity
        self.drain = drain
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
        if target == self.desired[pool] == len(pods) and (pool != BATCH or self.spot_capacity is None):
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
                exit_s = self.drain(pool, now) if victim.ready_at_s <= now else now
                self.billed_gpu_s[pool] += (min(exit_s, self.end_s) - victim.created_s) * self.gpus
            pods.sort(key=lambda r: r.created_s)
        if pool == BATCH and self.spot_capacity is not None:
            scheduled = sum(1 for r in pods if r.scheduled)
            for r in pods:
                if not r.scheduled and scheduled < self.spot_capacity:
                    # Scheduled now: billing and the cold start begin when a node is found.
                    r.scheduled, r.created_s, r.ready_at_s = True, now, now + r.cold_start_s
                    scheduled += 1
            for r in [r for r in pods if r.scheduled][self.spot_capacity :]:
                if r.ready_at_s > now:
                    r.scheduled = False
        self._counts.pop(pool, None)

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
