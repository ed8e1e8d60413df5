"""The simulator's policy loop: a virtual clock in fixed ticks, the policy called every interval.

Per tick and per service group (interactive -> the interactive pool; batch -> batch + batch-ondemand)
the fluid pool (`sim/fluid.py`) queues, admits and completes requests; the pods (`sim/lifecycle.py`)
start, become Ready, drain and bill; Prometheus (`sim/prometheus.py`) scrapes the servers' counters
and gauges. Request traces keep every request's tokens, so latency percentiles see each request's
own prefill and decode lengths.

Every policy (leadtime and the baselines alike) sees only the `Observation` that the operator's
default queries return from those scrapes when it decides (completions rate, last-scrape gauges,
p95 from histogram buckets, each over the metrics window) and `PoolState` from the pods' lifecycle;
never the simulator's internal state, the trace's future or the configured cold start.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from leadtime.policy.types import (
    BATCH,
    BATCH_ONDEMAND,
    INTERACTIVE,
    Observation,
    Policy,
    PolicyConfig,
)
from leadtime.replica import ReplicaProfile
from leadtime.sim import fluid
from leadtime.sim.lifecycle import Pods, SpotTrace
from leadtime.sim.metrics import RunMetrics, compute_metrics
from leadtime.sim.prometheus import LATENCY_BUCKETS_S, PrometheusView, histogram_quantile, scrape_times
from leadtime.sim.traces import Arrivals, ClassArrivals

__all__ = ["EPOCH_S", "LATENCY_BUCKETS_S", "RunResult", "SimConfig", "Timeline", "histogram_quantile", "simulate"]

# 2023-11-14 00:00 UTC, a Tuesday: trace second 0 is midnight, so time-of-day floors line up with
# day-aligned traces (ServeGen's windows start at midnight).
EPOCH_S = 1_699_920_000.0

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
    # Prometheus' scrape interval; scrapes fall at scrape_interval_s / 2 + k * scrape_interval_s, so a
    # policy syncing on whole intervals reads samples half an interval old, not fresh ones.
    scrape_interval_s: float = 15.0
    # Kubernetes' terminationGracePeriodSeconds: a draining replica still running work then is killed
    # and that work re-queued.
    termination_grace_s: float = 600.0
    slo_window_s: float = 60.0
    spot_capacity: int | None = None  # batch-pool replicas the spot market will schedule (None: unlimited)
    # Spot instances obtainable over time (`lifecycle.load_spot_trace` / `synthesize_spot_trace`): batch
    # replicas beyond it are preempted with `spot_notice_s` of notice, drain, and re-queue what is left.
    spot_trace: SpotTrace | None = None
    spot_notice_s: float = 120.0
    seed: int = 0
    epoch_s: float = EPOCH_S
    # Interactive replicas already serving, Ready, when the trace begins. A deployment in production
    # is not scaled from nothing when a trace window opens; with 0 each policy's first decision is
    # created Ready instead, which scores a reactive policy on its own empty first metrics window.
    initial_replicas: int = 0


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
    end_s = n_ticks * dt
    groups = {name: fluid.Group(pools) for name, pools in GROUPS.items()}

    def drain(pool: str, now: float, grace_s: float) -> float:
        # The victim has left the pod list already: the group's serving replicas were one more.
        group = groups[POOL_GROUP[pool]]
        serving = sum(pods.counts(p, now)[0] for p in group.pools) + 1
        return fluid.start_drain(group, profile, serving, now, grace_s).exit_s

    pods = Pods(tuple(POOL_GROUP), profile, seed=config.seed, epoch_s=config.epoch_s, end_s=end_s,
                spot_capacity=config.spot_capacity, drain=drain, grace_s=config.termination_grace_s,
                spot_trace=config.spot_trace, spot_notice_s=config.spot_notice_s)
    spot_seen = pods.spot_obtainable(0.0)
    deadline_s = config.policy_config.batch.deadline_s
    batch_missed = 0.0  # batch requests finished after the batch pool's deadline
    samples = _Samples(arrivals)
    dropped_at: list[tuple[float, float]] = []
    interactive = arrivals.classes["interactive"]
    batch = arrivals.classes["batch"]
    has_batch = batch.total > 0
    slo_index = 0 if config.slo_metric == "ttft" else 1
    scrape_at = scrape_times(end_s, dt, config.scrape_interval_s, config.scrape_interval_s / 2.0)
    views = {name: PrometheusView(scrape_at, config.metrics_window_s) for name in groups}
    scrape_list = scrape_at.tolist() + [math.inf]
    next_scrape = 0
    # Per-tick inputs as Python lists: indexing numpy arrays tick by tick returns numpy scalars, whose
    # arithmetic in the hot loop costs several times a float's.
    per_tick = {
        name: (cls.count.tolist(), cls.input_tokens.tolist(), cls.output_tokens.tolist(),
               cls.first.tolist() if cls.first is not None else None)
        for name, cls in (("interactive", interactive), ("batch", batch))
    }
    memory: dict[str, Any] = {}
    next_policy_s = 0.0
    idle_gpu_s = 0.0
    starting_gpu_s = 0.0  # the part of idle_gpu_s billed while replicas start (cold starts)
    drain_running = {name: 0.0 for name in groups}  # the drains' mean running over the last tick
    timeline = None
    if record_timeline:
        timeline = Timeline(dt, interactive.count.astype(float) / dt, np.zeros(n_ticks), np.zeros(n_ticks),
                            np.zeros(n_ticks))
    gpus = profile.gpus_per_replica

    def ready_count(group: fluid.Group, now: float) -> int:
        return sum(pods.counts(pool, now)[0] for pool in group.pools)

    def record(name: str, cohort: list, k: float, wait_s: float, b: float) -> None:
        nonlocal batch_missed
        arrival_s, _, inp, out, first = cohort
        view = views[name]
        if first >= 0:
            cls = arrivals.classes[name]
            lo, hi = int(first), int(first + k)
            ttft, e2e = profile.latency_at(cls.request_input_tokens[lo:hi], cls.request_output_tokens[lo:hi], b,
                                           (groups[name].running_in, groups[name].running_out))
            ttft_all, e2e_all = samples.per_request[name]
            ttft_all[lo:hi] = ttft + wait_s
            e2e_all[lo:hi] = e2e + wait_s
            values = (ttft if slo_index == 0 else e2e) + wait_s
            if name == "batch":
                batch_missed += float(np.count_nonzero(e2e + wait_s > deadline_s))
            # Counted in the histogram when it happens: first token (ttft) or completion (e2e).
            view.observe_many(arrival_s + values, values)
            cohort[4] = first + k
        else:
            ttft, e2e = profile.latency_at(inp, out, b)
            samples.cohort.append((arrival_s, k, ttft + wait_s, e2e + wait_s))
            if name == "batch" and e2e + wait_s > deadline_s:
                batch_missed += k
            value = (ttft if slo_index == 0 else e2e) + wait_s
            view.observe(arrival_s + value, bisect.bisect_left(LATENCY_BUCKETS_S, value), k)

    def observe(now: float) -> Observation:
        seen = {name: view.query(now) for name, view in views.items()}
        ages = [age for _, age in seen.values() if age is not None]
        # Before any scrape every query returns nothing (all fields unknown), as in the operator.
        return Observation(at_s=now + config.epoch_s, interactive=seen["interactive"][0], batch=seen["batch"][0],
                           stale_s=min(ages) if ages else 0.0)

    if config.initial_replicas > 0:
        pods.start_ready(INTERACTIVE, config.initial_replicas)
        # The deployment was serving before the trace: Prometheus already has a full window of its
        # completions. Seed it with the first window's mean arrival rate (a pool keeping up completes
        # what arrives), so the first decisions see a minute's rate and not an empty window.
        window_ticks = max(1, round(config.metrics_window_s / dt))
        for name, view in views.items():
            seeded = per_tick[name][0][:window_ticks]
            view.seed(sum(seeded) / (len(seeded) * dt) if seeded else 0.0, config.metrics_window_s)

    for tick in range(n_ticks):
        now = tick * dt
        if config.spot_trace is not None and config.spot_trace.at(now) != spot_seen:
            spot_seen = config.spot_trace.at(now)
            pods.reconcile_spot(now)
        if now >= scrape_list[next_scrape] - 1e-9:
            for name, group in groups.items():
                views[name].scrape(now, group.completed, group.queued, group.mean_running + drain_running[name])
            next_scrape += 1

        if now >= next_policy_s - 1e-9:
            states = {pool: pods.pool_state(pool, now) for pool in POOL_GROUP}
            decision = policy.decide(config.policy_config, observe(now), states, memory, now + config.epoch_s)
            memory = dict(decision.memory or {})
            for pool, pool_decision in decision.pools.items():
                if pool in pods.replicas:
                    if tick == 0 and not (config.initial_replicas and pool == INTERACTIVE):
                        # The deployment existed before the trace began: first decision starts Ready.
                        pods.start_ready(pool, max(0, int(pool_decision.replicas)))
                    else:
                        pods.apply(pool, pool_decision.replicas, now)
            next_policy_s = now + policy.interval_s
            if progress is not None:
                progress(tick / n_ticks)

        for name, group in groups.items():
            if group.drains:
                drain_running[name] = fluid.step_drains(group, now, dt)
            elif drain_running[name]:
                drain_running[name] = 0.0
            if name == "batch" and not has_batch and group.running <= 0:
                continue
            counts_now, input_now, output_now, first_now = per_tick[name]
            count = counts_now[tick]
            if count > 0:
                first = first_now[tick] if first_now is not None else -1
                dropped = fluid.arrive(group, now, count, input_now[tick], output_now[tick], first,
                                       config.queue_limit)
                if dropped:
                    dropped_at.append((now, dropped))
            n_ready = ready_count(group, now)
            if group.queued > 0 and n_ready > 0:
                admitted, b = fluid.admit(group, profile, n_ready, dt)
                for cohort, k, extra_wait in admitted:
                    record(name, cohort, k, now - cohort[0] + extra_wait, b)
            fluid.depart(group, profile, n_ready, dt)

        starting_now = 0
        for pool in POOL_GROUP:
            if not pods.replicas[pool]:
                continue
            n_ready, n_starting, _ = pods.counts(pool, now)
            if pool == INTERACTIVE:
                starting_now = n_starting
            group = groups[POOL_GROUP[pool]]
            # A replica is idle while it starts or has nothing running. Work spreads least-loaded first, so
            # the busy replicas are the time-averaged running sequences, at most the Ready ones; sampling
            # `running` after the tick's departures instead read ~0 whenever work finishes within a tick.
            # Draining replicas are billed and count as busy until they exit.
            group_ready = ready_count(group, now) if len(group.pools) > 1 else n_ready
            busy = min(float(group_ready), group.mean_running) * (n_ready / group_ready if group_ready else 0.0)
            idle_gpu_s += (n_starting + n_ready - busy) * gpus * dt
            starting_gpu_s += n_starting * gpus * dt
        if timeline is not None:
            timeline.ready[tick] = pods.counts(INTERACTIVE, now)[0] if pods.replicas[INTERACTIVE] else 0
            timeline.starting[tick] = starting_now
            timeline.queued[tick] = groups["interactive"].queued

    billed_gpu_s = pods.settle()
    unserved = {name: _unserved_mix(group, arrivals.classes[name]) for name, group in groups.items()}
    # Requests still queued at the end waited at least until the end: counted with that latency.
    for name, group in groups.items():
        for cohort in group.queue:
            if cohort[4] >= 0:
                cls = arrivals.classes[name]
                lo, hi = int(cohort[4]), int(cohort[4] + cohort[1])
                waits = end_s - cls.request_arrival_s[lo:hi]
                for arr in samples.per_request[name]:
                    arr[lo:hi] = waits
                if name == "batch":
                    batch_missed += float(np.count_nonzero(waits > deadline_s))
            else:
                samples.cohort.append((cohort[0], cohort[1], end_s - cohort[0], end_s - cohort[0]))
                if name == "batch" and end_s - cohort[0] > deadline_s:
                    batch_missed += cohort[1]
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
        starting_gpu_s=starting_gpu_s,
        unserved=unserved,
        scale_events=pods.scale_events,
        dropped=sum(g.dropped for g in groups.values()),
        requeued=sum(g.requeued for g in groups.values()),
        dropped_at=dropped_at,
        batch=(groups["batch"].dropped, batch_missed) if has_batch else None,
    )
    params = dict(params if params is not None else getattr(policy, "params", lambda: {})())
    return RunResult(policy.name, params, metrics, timeline, time.perf_counter() - wall_start)


def _unserved_mix(group: fluid.Group, cls: ClassArrivals) -> tuple[float, float, float]:
    """(requests, input tokens, output tokens) not finished at the end: queued, running or draining."""
    count = in_sum = out_sum = 0.0
    for _, k, inp, out, first in group.queue:
        if first >= 0 and cls.request_input_tokens is not None and cls.request_output_tokens is not None:
            lo, hi = int(first), int(first + k)
            in_sum += float(cls.request_input_tokens[lo:hi].sum())
            out_sum += float(cls.request_output_tokens[lo:hi].sum())
        else:
            in_sum += k * inp
            out_sum += k * out
        count += k
    in_flight = group.running + group.draining
    return count + in_flight, in_sum + in_flight * group.running_in, out_sum + in_flight * group.running_out
