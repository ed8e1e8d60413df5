"""`bound`: the fluid lower bound on GPU-hours, proven against the simulator's own service law.

The fluid bound: no run that finishes every request by the trace end (none dropped, none queued, none
in service at the end) bills fewer GPU-hours than the trace's whole work done at the largest batch the
simulator can ever run, whatever latency that run reaches. The proof (docs/simulator.md, "The lower
bound"), for one service group with `n` Ready replicas in a tick of `dt` seconds:

1. The engine departs `d = R * min(1, dt / (max(b, 1) * c(b)))` of the `R = n * b` running requests,
   `c(b) = cost_per_request_s(in, out, b)` at the running mix's mean tokens. So `d * c(max(b, 1)) <= n * dt`:
   the work a tick completes is at most its Ready replica-seconds, each billed.
2. `c(b) = max(in, 1)/P + out * (s + a/b)` (prefill rate P, decode base a, per-sequence s) is linear in
   tokens at a fixed b and falls as b grows. If every batch stays <= B, then summed over ticks,
   `ready replica-seconds >= sum over requests of (in/P + out * (s + a/B))`: departures remove the mix
   at its mean, so the token sums of what departs are the token sums of what arrived (per-tick mean
   tokens of a rate trace give the exact sums for the same reason).
3. B: admission fills `max_concurrency` of the head cohort plus the departures the tick expects,
   `b_after <= K + dt / c(b_now)`; K is at most the largest per-cohort `max_concurrency` and `c(b_now)` at
   least the cheapest cohort's cost, so every batch stays below the least fixed point of
   `B = K + dt / min_cohort c(B)` (`max_batch_reached`). That is above `max_num_seqs`: the fluid engine
   credits a tick's departures as free slots at its start, so its batch overshoots the slot limit.
4. Billing is per replica times `gpus_per_replica`; cost is priced per pool (batch work at the cheaper
   of the batch and on-demand prices, since either pool may serve it).

Work the engine zeroes as rounding dust (< 1e-6 request per tick) is taken off, so the bound stays
below every such run. Only the simulator has it: it reads the whole trace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np

from leadtime.replica import ReplicaProfile
from leadtime.sim.engine import RunResult, SimConfig
from leadtime.sim.metrics import RunMetrics
from leadtime.sim.traces import Arrivals, ClassArrivals

# The engine sets `running` to 0 below this many requests (sim/engine.py): work it never charges.
DUST_REQUESTS = 1e-6


@dataclass(frozen=True)
class FluidBound:
    """GPU-hours and cost no run that finishes all of the trace's requests can go below."""

    gpu_hours: float
    cost_usd: float
    requests: float
    windows: int  # 1-minute windows with traffic (the bound's attainment is 1.0 in each)
    max_batch: dict[str, float] = field(default_factory=dict)  # per service group, B of the proof
    replica_s: dict[str, float] = field(default_factory=dict)  # per service group, the work


def max_batch_reached(cls: ClassArrivals, profile: ReplicaProfile, tick_s: float) -> float:
    """The largest batch per replica the fluid engine can run for these arrivals (step 3 of the proof)."""
    busy = cls.count > 0
    if not busy.any():
        return float(profile.max_num_seqs)
    inp, out = cls.input_tokens[busy], cls.output_tokens[busy]
    # max_concurrency falls as in + out grows: the mix of any cohorts is no shorter than the shortest.
    shortest = int(np.argmin(inp + out))
    slots = float(profile.max_concurrency(float(inp[shortest]), float(out[shortest])))

    def cheapest_s(batch: float) -> float:
        # c is linear in tokens at a fixed batch, so over mixes of cohorts it is least at one cohort;
        # the prefill floor of one token keeps it at least 1/P.
        per_token = inp / profile.prefill_tokens_per_s + out * (profile.decode_per_seq_s + profile.decode_base_s / batch)
        return max(float(per_token.min()), 1.0 / profile.prefill_tokens_per_s)

    batch = slots
    # Increasing and bounded, so iterating from K climbs to the least fixed point.
    for _ in range(10_000):
        following = slots + tick_s / cheapest_s(batch)
        if following - batch <= 1e-12 * following:
            batch = following
            break
        batch = following
    # The engine admits while 1 - 1e-9 slots are free: a hair of slack above the fixed point.
    return batch * (1.0 + 1e-9) + 1e-6


def work_replica_s(cls: ClassArrivals, profile: ReplicaProfile, batch: float) -> float:
    """Replica-seconds the class's requests take at a steady batch (no prefill floor: a lower bound)."""
    count = cls.count.astype(float)
    seconds = count * (cls.input_tokens / profile.prefill_tokens_per_s
                       + cls.output_tokens * (profile.decode_per_seq_s + profile.decode_base_s / batch))
    return float(seconds.sum())


def _windows(arrivals: Arrivals, window_s: float) -> int:
    ticks = max(1, round(window_s / arrivals.tick_s))
    total = sum(cls.count for cls in arrivals.classes.values())
    padded = np.concatenate([total, np.zeros((-len(total)) % ticks)])
    return int((padded.reshape(-1, ticks).sum(axis=1) > 0).sum())


def fluid_bound(arrivals: Arrivals, config: SimConfig) -> FluidBound:
    """The fluid bound of these arrivals (this seed's) under the config's replica profile and prices."""
    profile = config.profile
    prices = {"interactive": config.policy_config.price_per_gpu_hour,
              "batch": min(config.policy_config.batch.price_per_gpu_hour, config.policy_config.price_per_gpu_hour)}
    gpu_hours = cost = requests = 0.0
    batches, work = {}, {}
    for name, cls in arrivals.classes.items():
        if cls.total == 0:
            continue
        batch = max_batch_reached(cls, profile, arrivals.tick_s)
        seconds = work_replica_s(cls, profile, batch)
        busy = cls.count > 0
        dearest_s = float((cls.input_tokens[busy] / profile.prefill_tokens_per_s
                           + cls.output_tokens[busy] * (profile.decode_per_seq_s + profile.decode_base_s)).max())
        # at most DUST_REQUESTS of the mix per tick, each at most the dearest cohort's cost at batch 1
        seconds = max(0.0, seconds - arrivals.n_ticks * DUST_REQUESTS * (dearest_s + 1.0 / profile.prefill_tokens_per_s))
        batches[name], work[name] = batch, seconds
        hours = seconds * profile.gpus_per_replica / 3600.0
        gpu_hours += hours
        cost += hours * prices[name]
        requests += cls.total
    return FluidBound(gpu_hours, cost, requests, _windows(arrivals, config.slo_window_s), batches, work)


def bound_result(arrivals: Arrivals, config: SimConfig) -> RunResult:
    """The bound as a run: its GPU-hours and cost, attainment 1.0 (a bound has no latencies: p95 0)."""
    started = time.perf_counter()
    bound = fluid_bound(arrivals, config)
    metrics = RunMetrics(gpu_hours=bound.gpu_hours, cost_usd=bound.cost_usd, slo_window_attainment=1.0,
                         slo_request_attainment=1.0, p95_latency_s=0.0, scale_events=0, idle_gpu_share=0.0,
                         dropped=0.0, requests=bound.requests, requeued=0.0, windows=bound.windows)
    params = {"max_batch": round(bound.max_batch.get("interactive", 0.0), 1)}
    return with_x_bound(RunResult("bound", params, metrics, None, time.perf_counter() - started), bound.gpu_hours)


@dataclass
class BoundedRun(RunResult):
    """A run with its GPU-hours over the bound's (`x_bound` in its JSON)."""

    x_bound: float | None = None
    floor_gpu_hours: float | None = None  # this run's floor (run_floor_gpu_hours): the bound less its unfinished work

    def to_json(self) -> dict:
        doc = super().to_json()
        doc["x_bound"] = None if self.x_bound is None else round(self.x_bound, 4)
        if self.floor_gpu_hours is not None:
            doc["floor_gpu_hours"] = round(self.floor_gpu_hours, 4)
        return doc


def with_x_bound(result: RunResult, bound_gpu_hours: float, floor_gpu_hours: float | None = None) -> BoundedRun:
    """`result` with `x_bound` = its GPU-hours / the bound's (None if the bound is 0: no traffic), and
    its own floor when given."""
    ratio = result.metrics.gpu_hours / bound_gpu_hours if bound_gpu_hours > 0 else None
    values = {f.name: getattr(result, f.name) for f in fields(result) if f.name not in ("x_bound", "floor_gpu_hours")}
    return BoundedRun(**values, x_bound=ratio, floor_gpu_hours=floor_gpu_hours)


def run_floor_gpu_hours(bound: FluidBound, metrics: RunMetrics, profile: ReplicaProfile) -> float:
    """The least a run that leaves requests unfinished at the end can bill: the bound less the work
    of what it did not finish (queued, running or draining), counted whole at the bound's batch.

    Every run is at or above this floor; a run that finished everything has the bound itself. Runs
    whose queue grows without end (a reactive policy reading completions while a queue builds) can
    bill less than the bound, and only this floor holds them."""
    unserved_s = 0.0
    for name, (_, in_sum, out_sum) in (metrics.unserved_mix or {}).items():
        batch = bound.max_batch.get(name, float(profile.max_num_seqs))
        unserved_s += (in_sum / profile.prefill_tokens_per_s
                       + out_sum * (profile.decode_per_seq_s + profile.decode_base_s / batch))
    return max(0.0, bound.gpu_hours - unserved_s * profile.gpus_per_replica / 3600.0)
