"""The fluid (cohort) simulator: a virtual clock in fixed ticks, the policy called every interval.

Per tick and per service group (interactive -> the interactive pool; batch -> batch + batch-ondemand):
arrivals join a FIFO queue of cohorts; cohorts are admitted while the group's ready replicas have free
slots (`max_concurrency` of the head's tokens); running work departs at the rate the replica model
gives for the current batch per replica (Little: R / (b * cost_per_request_s(b))); each admitted
cohort's latency is its queue wait plus `latency_at(in, out, b)`. Request traces keep every request's
tokens, so latency percentiles see each request's own prefill and decode lengths.

The policy sees only an `Observation` built like Prometheus would (arrivals over the last minute,
queue depth, running, p95 from latency histogram buckets over the last minute) and `PoolState` from
the replicas' lifecycle; never the trace's future or the configured cold start.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leadtime.policy.types import (
    BATCH,
    BATCH_ONDEMAND,
    INTERACTIVE,
    ClassObservation,
    Observation,
    Policy,
    PolicyConfig,
    PoolState,
    ReadyPod,
)
from leadtime.replica import ReplicaProfile
from leadtime.sim.metrics import RunMetrics, compute_metrics
from leadtime.sim.traces import Arrivals

# 2023-11-14 00:00 UTC, a Tuesday: trace second 0 is midnight, so time-of-day floors line up with
# day-aligned traces (ServeGen's windows start at midnight).
EPOCH_S = 1_699_920_000.0

# Prometheus-style latency buckets (vLLM's TTFT/e2e histogram bounds); the policy's p95 is
# interpolated inside these, as histogram_quantile does.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                     7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0, 240.0, 480.0, 960.0, 1920.0)

GROUPS = {"interactive": (INTERACTIVE,), "batch": (BATCH, BATCH_ONDEMAND)}
POOL_GROUP = {INTERACTIVE: "interactive", BATCH: "batch", BATCH_ONDEMAND: "batch"}


@dataclass(frozen=True)
class SimConfig:
    profile: ReplicaProfile
    policy_config: PolicyConfig
    slo_metric: str = "ttft"  # which latency the SLO (and the policy's p95) is about
    slo_p95_s: float = 2.0
    queue_limit: int | None = None  # per service group; arrivals beyond it are dropped and reported
    metrics_window_s: float = 60.0  # the Prometheus range of rate() and histogram_quantile()
    slo_window_s: float = 60.0
    spot_capacity: int | None = None  # batch-pool replicas the spot market will schedule (None: unlimited)
    seed: int = 0
    epoch_s: float = EPOCH_S
    # Interactive replicas already serving, Ready, when the trace begins. A deployment in production
    # is not scaled from nothing when a trace window opens; with 0 each policy's first decision is
    # created Ready instead, which scores a reactive policy on its own empty first metrics window.
    initial_replicas: int = 0


@dataclass
class _Replica:
    created_s: float
    cold_start_s: float
    ready_at_s: float
    scheduled: bool = True  # False while Pending (no spot capacity): not billed, not starting


@dataclass
class _Group:
    pools: tuple[str, ...]
    queue: deque = field(default_factory=deque)  # [arrival_s, count, in, out, first_request_index]
    queued: float = 0.0
    running: float = 0.0
    running_in: float = 0.0
    running_out: float = 0.0
    dropped: float = 0.0
    requeued: float = 0.0
    mean_running: float = 0.0  # time-average of running over the current tick (Little), for idleness


@dataclass
class Timeline:
    """Per-tick series for plots (interactive group)."""

    tick_s: float
    arrivals: np.ndarray
    ready: np.ndarray
    starting: np.ndarray
    queued: np.ndarray


@dataclass
class RunResult:
    policy: str
    params: dict[str, Any]
    metrics: RunMetrics
    timeline: Timeline | None
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "params": self.params, **self.metrics.to_json(), "wall_s": round(self.wall_s, 3)}


class _Samples:
    """Latency samples: per request for request traces, per admitted cohort otherwise."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.per_request: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, cls in arrivals.classes.items():
            if cls.request_arrival_s is not None:
                n = len(cls.request_arrival_s)
                self.per_request[name] = (np.full(n, np.nan), np.full(n, np.nan))
        self.cohort: list[tuple[float, float, float, float]] = []  # arrival_s, weight, ttft, e2e


def simulate(
    policy: Policy,
    arrivals: Arrivals,
    config: SimConfig,
    *,
    params: dict[str, Any] | None = None,
    record_timeline: bool = True,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run one policy over the arrivals; returns its metrics and (optionally) the per-tick timeline."""
    wall_start = time.perf_counter()
    profile, dt, n_ticks = config.profile, arrivals.tick_s, arrivals.n_ticks
    rng = random.Random(config.seed)  # same cold-start draws, in creation order, for every policy
    groups = {name: _Group(pools) for name, pools in GROUPS.items()}
    replicas: dict[str, list[_Replica]] = {pool: [] for pool in POOL_GROUP}
    desired = {pool: 0 for pool in POOL_GROUP}
    samples = _Samples(arrivals)
    interactive = arrivals.classes["interactive"]
    batch = arrivals.classes["batch"]
    has_batch = batch.total > 0
    window_ticks = max(1, round(config.metrics_window_s / dt))
    arrivals_ring = {g: np.zeros(window_ticks) for g in groups}
    arrivals_in_window = {g: 0.0 for g in groups}  # running sum of the ring: no per-tick re-summing
    n_buckets = len(LATENCY_BUCKETS_S) + 1
    hist_ring = {g: np.zeros((window_ticks, n_buckets)) for g in groups}
    hist_in_window = {g: np.zeros(n_buckets) for g in groups}  # running sum of hist_ring over slots
    buckets = np.asarray(LATENCY_BUCKETS_S)
    touched = {g: [False] * window_ticks for g in groups}
    slo_index = 0 if config.slo_metric == "ttft" else 1
    # Per-tick inputs as Python lists: indexing numpy arrays tick by tick returns numpy scalars, whose
    # arithmetic in the hot loop costs several times a float's.
    per_tick = {
        name: (cls.count.tolist(), cls.input_tokens.tolist(), cls.output_tokens.tolist(),
               cls.first.tolist() if cls.first is not None else None)
        for name, cls in (("interactive", interactive), ("batch", batch))
    }
    memory: dict[str, Any] = {}
    next_policy_s = 0.0
    billed_gpu_s = {pool: 0.0 for pool in POOL_GROUP}
    idle_gpu_s = 0.0
    scale_events = 0
    timeline = None
    if record_timeline:
        timeline = Timeline(dt, interactive.count.astype(float) / dt, np.zeros(n_ticks), np.zeros(n_ticks),
                            np.zeros(n_ticks))
    gpus = profile.gpus_per_replica

    # (ready, starting, billed, next ready_at) per pool, recomputed only when a pod changes state.
    cache: dict[str, tuple[int, int, int, float]] = {}

    def counts(pool: str, now: float) -> tuple[int, int, int]:
        cached = cache.get(pool)
        if cached is None or now >= cached[3]:
            ready = starting = billed = 0
            next_ready = math.inf
            for r in replicas[pool]:
                if r.scheduled:
                    billed += 1
                    if r.ready_at_s <= now:
                        ready += 1
                    else:
                        starting += 1
                        next_ready = min(next_ready, r.ready_at_s)
            cached = cache[pool] = (ready, starting, billed, next_ready)
        return cached[0], cached[1], cached[2]

    def ready_count(group: _Group, now: float) -> int:
        return sum(counts(pool, now)[0] for pool in group.pools)

    def remove_ready(group: _Group, now: float) -> None:
        """A Ready replica leaves: its share of the group's running work goes back to the queue front."""
        n_ready = ready_count(group, now)
        if n_ready <= 0 or group.running <= 0:
            return
        share = group.running / n_ready
        b = group.running / n_ready
        _, e2e = profile.latency_at(group.running_in, group.running_out, b)
        group.queue.appendleft([now - e2e / 2.0, share, group.running_in, group.running_out, -1])
        group.queued += share
        group.requeued += share
        group.running -= share

    def apply(pool: str, target: int, now: float) -> None:
        nonlocal scale_events
        target = max(0, int(target))
        if target == desired[pool] == len(replicas[pool]) and (pool != BATCH or config.spot_capacity is None):
            return  # nothing to do: keep the cached counts and pool state (most control intervals)
        cache.pop(pool, None)
        version[pool] += 1
        if target != desired[pool]:
            scale_events += 1
            desired[pool] = target
        pods = replicas[pool]
        while len(pods) < target:
            cold = max(0.0, profile.cold_start.sample_s(rng))
            pods.append(_Replica(created_s=now, cold_start_s=cold, ready_at_s=now + cold))
        if len(pods) > target:
            # Kubernetes removes unscheduled pods first, then not-ready ones, then the newest Ready ones.
            pods.sort(key=lambda r: (not r.scheduled, r.ready_at_s > now, r.ready_at_s), reverse=True)
            group = groups[POOL_GROUP[pool]]
            while len(pods) > target:
                victim = pods[0]
                if victim.scheduled and victim.ready_at_s <= now:
                    remove_ready(group, now)
                billed_gpu_s[pool] += (now - victim.created_s) * gpus if victim.scheduled else 0.0
                pods.pop(0)
            pods.sort(key=lambda r: r.created_s)
        cache.pop(pool, None)
        if pool == BATCH and config.spot_capacity is not None:
            scheduled = 0
            for r in pods:
                if r.scheduled:
                    scheduled += 1
            for r in pods:
                if not r.scheduled and scheduled < config.spot_capacity:
                    # Scheduled now: billing and the cold start begin when a node is found.
                    r.scheduled, r.created_s, r.ready_at_s = True, now, now + r.cold_start_s
                    scheduled += 1
            over = [r for r in pods if r.scheduled][config.spot_capacity :]
            for r in over:
                if r.ready_at_s > now:
                    r.scheduled = False
        cache.pop(pool, None)

    # Per pool: (version, next ready_at, ready pods, starting created_s, pending created_s). The Ready
    # tuple only changes when a pod is added/removed or becomes Ready, so it is rebuilt only then.
    state_cache: dict[str, tuple[int, float, tuple, tuple, tuple]] = {}
    version = {pool: 0 for pool in POOL_GROUP}

    def pool_state(pool: str, now: float) -> PoolState:
        cached = state_cache.get(pool)
        if cached is None or cached[0] != version[pool] or now >= cached[1]:
            ready, starting, pending = [], [], []
            next_ready = math.inf
            for r in replicas[pool]:
                if not r.scheduled:
                    pending.append(r.created_s)
                elif r.ready_at_s <= now:
                    ready.append(ReadyPod(ready_at_s=r.ready_at_s + config.epoch_s, cold_start_s=r.cold_start_s))
                else:
                    starting.append(r.created_s)
                    next_ready = min(next_ready, r.ready_at_s)
            cached = state_cache[pool] = (version[pool], next_ready, tuple(ready), tuple(starting), tuple(pending))
        _, _, ready_pods, starting_created, pending_created = cached
        return PoolState(desired=desired[pool], ready=ready_pods,
                         starting_ages_s=tuple(now - c for c in starting_created),
                         pending_ages_s=tuple(now - c for c in pending_created))

    def observe(name: str, tick: int) -> ClassObservation:
        group = groups[name]
        seen = window_ticks if config.initial_replicas > 0 else min(tick + 1, window_ticks)
        hist = hist_in_window[name]
        return ClassObservation(
            arrival_rate_rps=max(0.0, arrivals_in_window[name]) / (seen * dt),
            queue_depth=group.queued,
            # What a scrape of vLLM's running gauge sees on average: the last tick's time-averaged
            # running sequences. The count left after the tick's departures read ~0 whenever work is
            # shorter than a tick (5-s ticks, sub-second requests), and an in-flight HPA scaled to 1.
            running=group.mean_running,
            p95_latency_s=histogram_quantile(0.95, hist),
        )

    def record(name: str, cohort: list, k: float, wait_s: float, b: float, tick: int) -> None:
        arrival_s, _, inp, out, first = cohort
        touched[name][tick % window_ticks] = True
        if first >= 0:
            cls = arrivals.classes[name]
            lo, hi = int(first), int(first + k)
            ttft, e2e = profile.latency_at(cls.request_input_tokens[lo:hi], cls.request_output_tokens[lo:hi], b,
                                           (groups[name].running_in, groups[name].running_out))
            waits = wait_s + 0.0
            ttft_all, e2e_all = samples.per_request[name]
            ttft_all[lo:hi] = ttft + waits
            e2e_all[lo:hi] = e2e + waits
            values = (ttft if slo_index == 0 else e2e) + waits
            added = np.bincount(np.searchsorted(buckets, values), minlength=n_buckets)
            hist_ring[name][tick % window_ticks] += added
            hist_in_window[name] += added
            cohort[4] = first + k
        else:
            ttft, e2e = profile.latency_at(inp, out, b)
            samples.cohort.append((arrival_s, k, ttft + wait_s, e2e + wait_s))
            value = (ttft if slo_index == 0 else e2e) + wait_s
            bucket = bisect.bisect_left(LATENCY_BUCKETS_S, value)
            hist_ring[name][tick % window_ticks][bucket] += k
            hist_in_window[name][bucket] += k

    if config.initial_replicas > 0:
        replicas[INTERACTIVE] = [_Replica(created_s=0.0, cold_start_s=0.0, ready_at_s=0.0)
                                 for _ in range(config.initial_replicas)]
        desired[INTERACTIVE] = config.initial_replicas
        version[INTERACTIVE] += 1
        # The deployment was serving before the trace: Prometheus already has a full window of
        # arrivals. Seed it with the first window's mean, so the first decisions see a minute's rate
        # and not a one-tick one.
        for name in groups:
            seeded = per_tick[name][0][:window_ticks]
            mean = sum(seeded) / len(seeded) if seeded else 0.0
            arrivals_ring[name][:] = mean
            arrivals_in_window[name] = mean * window_ticks

    for tick in range(n_ticks):
        now = tick * dt
        slot = tick % window_ticks
        for name in groups:
            if touched[name][slot]:
                hist_in_window[name] -= hist_ring[name][slot]
                hist_ring[name][slot] = 0.0
                touched[name][slot] = False
        for name in groups:
            arriving = float(per_tick[name][0][tick])
            arrivals_in_window[name] += arriving - arrivals_ring[name][slot]
            arrivals_ring[name][slot] = arriving

        if now >= next_policy_s - 1e-9:
            observation = Observation(at_s=now + config.epoch_s, interactive=observe("interactive", tick),
                                      batch=observe("batch", tick))
            states = {pool: pool_state(pool, now) for pool in POOL_GROUP}
            decision = policy.decide(config.policy_config, observation, states, memory, now + config.epoch_s)
            memory = dict(decision.memory or {})
            for pool, pool_decision in decision.pools.items():
                if pool in replicas:
                    if tick == 0 and not (config.initial_replicas and pool == INTERACTIVE):
                        # The deployment existed before the trace began: first decision starts Ready.
                        for _ in range(max(0, int(pool_decision.replicas))):
                            replicas[pool].append(_Replica(created_s=0.0, cold_start_s=0.0, ready_at_s=0.0))
                        desired[pool] = max(0, int(pool_decision.replicas))
                        version[pool] += 1  # the cached pool state must see these replicas
                    else:
                        apply(pool, pool_decision.replicas, now)
            next_policy_s = now + policy.interval_s
            if progress is not None:
                progress(tick / n_ticks)

        for name, group in groups.items():
            if name == "batch" and not has_batch and group.running <= 0:
                continue
            counts_now, input_now, output_now, first_now = per_tick[name]
            count = counts_now[tick]
            if count > 0:
                if config.queue_limit is not None and group.queued + count > config.queue_limit:
                    dropped = min(count, max(0.0, group.queued + count - config.queue_limit))
                    group.dropped += dropped
                    count -= int(math.ceil(dropped))
                if count > 0:
                    first = first_now[tick] if first_now is not None else -1
                    group.queue.append([now, float(count), input_now[tick], output_now[tick], first])
                    group.queued += count
            n_ready = ready_count(group, now)
            if group.queued > 0 and n_ready > 0:
                admitted: list[tuple[list, float, float]] = []
                free = n_ready * profile.max_concurrency(group.queue[0][2], group.queue[0][3]) - group.running
                # Slots also free up during the tick as running work completes; a request admitted into
                # one of those waits until its slot frees (position / departure rate), not a whole tick.
                departure_rps = 0.0
                if group.running > 0:
                    b_now = group.running / n_ready
                    departure_rps = group.running / (max(b_now, 1.0) * profile.cost_per_request_s(
                        group.running_in, group.running_out, b_now))
                    free += departure_rps * dt
                slots_now = free - departure_rps * dt
                position = 0.0
                while group.queue and free >= 1.0 - 1e-9:
                    cohort = group.queue[0]
                    k = min(cohort[1], math.floor(free + 1e-9)) if cohort[4] >= 0 else min(cohort[1], free)
                    if k <= 0:
                        break
                    extra_wait = max(0.0, position + k / 2.0 - slots_now) / departure_rps if departure_rps else 0.0
                    admitted.append((cohort, k, min(extra_wait, dt)))
                    position += k
                    free -= k
                    total = group.running + k
                    group.running_in = (group.running * group.running_in + k * cohort[2]) / total
                    group.running_out = (group.running * group.running_out + k * cohort[3]) / total
                    group.running = total
                    group.queued -= k
                    if k >= cohort[1] - 1e-9:
                        group.queue.popleft()
                    else:
                        cohort[1] -= k
                b = group.running / n_ready
                for cohort, k, extra_wait in admitted:
                    record(name, cohort, k, now - cohort[0] + extra_wait, b, tick)
                if not group.queue:
                    group.queued = 0.0
            group.mean_running = 0.0
            if group.running > 0 and n_ready > 0:
                b = group.running / n_ready
                # A request's time in service at batch b (below one per replica it runs alone: b = 1).
                in_service_s = max(b, 1.0) * profile.cost_per_request_s(group.running_in, group.running_out, b)
                # Little within the tick: work shorter than the tick is in service for in_service_s of it.
                group.mean_running = group.running * min(1.0, in_service_s / dt)
                group.running -= group.running * min(1.0, dt / in_service_s)
                if group.running < 1e-6:
                    group.running = 0.0

        starting_now = 0
        for pool in POOL_GROUP:
            if not replicas[pool]:
                continue
            n_ready, n_starting, _ = counts(pool, now)
            if pool == INTERACTIVE:
                starting_now = n_starting
            group = groups[POOL_GROUP[pool]]
            # A replica is idle while it starts or has nothing running. Work spreads least-loaded first, so
            # the busy replicas are the time-averaged running sequences, at most the Ready ones; sampling
            # `running` after the tick's departures instead read ~0 whenever work finishes within a tick.
            group_ready = ready_count(group, now) if len(group.pools) > 1 else n_ready
            busy = min(float(group_ready), group.mean_running) * (n_ready / group_ready if group_ready else 0.0)
            idle_gpu_s += (n_starting + n_ready - busy) * gpus * dt
        if timeline is not None:
            timeline.ready[tick] = counts(INTERACTIVE, now)[0] if replicas[INTERACTIVE] else 0
            timeline.starting[tick] = starting_now
            timeline.queued[tick] = groups["interactive"].queued

    end_s = n_ticks * dt
    for pool, pods in replicas.items():
        for r in pods:
            if r.scheduled:
                billed_gpu_s[pool] += (end_s - r.created_s) * gpus
    # Requests still queued at the end waited at least until the end: counted with that latency.
    for name, group in groups.items():
        for cohort in group.queue:
            if cohort[4] >= 0:
                cls = arrivals.classes[name]
                lo, hi = int(cohort[4]), int(cohort[4] + cohort[1])
                waits = end_s - cls.request_arrival_s[lo:hi]
                for arr in samples.per_request[name]:
                    arr[lo:hi] = waits
            else:
                samples.cohort.append((cohort[0], cohort[1], end_s - cohort[0], end_s - cohort[0]))
    prices = {INTERACTIVE: config.policy_config.price_per_gpu_hour,
              BATCH: config.policy_config.batch.price_per_gpu_hour,
              BATCH_ONDEMAND: config.policy_config.price_per_gpu_hour}
    metrics = compute_metrics(
        arrivals=arrivals,
        per_request=samples.per_request,
        cohorts=samples.cohort,
        slo_index=slo_index,
        slo_p95_s=config.slo_p95_s,
        slo_window_s=config.slo_window_s,
        billed_gpu_s=billed_gpu_s,
        prices=prices,
        idle_gpu_s=idle_gpu_s,
        scale_events=scale_events,
        dropped=sum(g.dropped for g in groups.values()),
        requeued=sum(g.requeued for g in groups.values()),
    )
    params = dict(params if params is not None else getattr(policy, "params", lambda: {})())
    return RunResult(policy.name, params, metrics, timeline, time.perf_counter() - wall_start)


def histogram_quantile(q: float, counts: np.ndarray) -> float | None:
    """Prometheus' histogram_quantile over non-cumulative bucket counts (last bucket is +Inf)."""
    # Plain lists: on 28 buckets, called twice per control interval, numpy's call overhead dominates.
    cumulative = list(itertools.accumulate(counts.tolist()))
    total = cumulative[-1]
    if total <= 1e-6:  # the running window sums may leave rounding dust where no request is
        return None
    rank = q * total
    index = bisect.bisect_left(cumulative, rank)
    if index >= len(LATENCY_BUCKETS_S):
        return LATENCY_BUCKETS_S[-1]
    upper = LATENCY_BUCKETS_S[index]
    lower = LATENCY_BUCKETS_S[index - 1] if index > 0 else 0.0
    below = cumulative[index - 1] if index > 0 else 0.0
    in_bucket = cumulative[index] - below
    return lower + (upper - lower) * ((rank - below) / in_bucket if in_bucket > 0 else 1.0)
