"""Set up and run simulations: trace + profile + SLO -> per-policy results (used by the CLI and bench)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from leadtime.policy import make_policy
from leadtime.policy.types import BatchConfig, Policy, PolicyConfig
from leadtime.replica import ReplicaProfile
from leadtime.sim import sweep as sweep_plan
from leadtime.sim.bound import FluidBound, bound_result, fluid_bound, run_floor_gpu_hours, with_x_bound
from leadtime.sim.clairvoyant import (
    ClairvoyantPlan,
    ClairvoyantPolicy,
    interactive_need,
    peak_replicas,
    plan_clairvoyant,
)
from leadtime.sim.engine import RunResult, SimConfig, simulate
from leadtime.sim.lifecycle import SpotTrace, synthesize_spot_trace
from leadtime.sim.traces import Arrivals, Trace, build_arrivals, load_trace

POLICY_NAMES = ("leadtime", "hpa", "keda-waiting", "hpa-rps", "kpa", "clairvoyant", "static", "bound")
SWEPT = sweep_plan.SWEPT
SPOT_PRICE_SHARE = 0.45  # spot at 55 % off on-demand: the middle of the published 40-70 % discount  # baselines whose target grid --sweep runs (then their behaviour knobs)


@dataclass
class Scenario:
    trace: Trace
    arrivals: Arrivals
    profile: ReplicaProfile
    config: SimConfig
    peak_replicas: int  # the busiest 10 s at saturation (sizes max_replicas)
    _clairvoyant_plan: ClairvoyantPlan | None = field(default=None, repr=False)
    _bound: FluidBound | None = field(default=None, repr=False)

    @property
    def bound(self) -> FluidBound:
        """The fluid lower bound of this scenario's arrivals (this seed's), computed on first use."""
        if self._bound is None:
            self._bound = fluid_bound(self.arrivals, self.config)
        return self._bound

    @property
    def clairvoyant_plan(self) -> ClairvoyantPlan:
        """The clairvoyant's targets, planned on first use (a few simulator runs) and kept."""
        if self._clairvoyant_plan is None:
            self._clairvoyant_plan = plan_clairvoyant(self.arrivals, self.config)[0]
        return self._clairvoyant_plan


def make_scenario(
    trace: str | Path | Trace,
    profile: ReplicaProfile,
    *,
    rate_scale: float = 1.0,
    slo_metric: str = "ttft",
    slo_p95_s: float = 2.0,
    seed: int = 0,
    tick_s: float | None = None,
    max_replicas: int | None = None,
    queue_limit: int | None = None,
    prior_error: float = 1.0,
    load_test_tokens: tuple[float, float] | None = None,
    spot_trace: SpotTrace | None = None,
) -> Scenario:
    """A trace, a replica profile and an SLO ready to simulate. leadtime's capacity prior is a load test
    of one replica at `load_test_tokens` (default: the profile's reference mix), times `prior_error`."""
    trace = trace if isinstance(trace, Trace) else load_trace(trace)
    if tick_s is None:
        # 1-s ticks resolve TTFT queueing; multi-day traces use 5-s ticks to stay within a minute.
        tick_s = 1.0 if trace.span_s <= 2 * 86400 else 5.0
    arrivals = build_arrivals(trace, tick_s=tick_s, rate_scale=rate_scale, seed=seed)
    # Step 1 of the clairvoyant, the replicas each tick's next 10 s need at the SLO: its peak sizes
    # max_replicas, its first minute the warm pool.
    need = interactive_need(arrivals, profile, slo_metric, slo_p95_s)
    peak = peak_replicas(need)
    if not (math.isfinite(prior_error) and prior_error > 0):
        raise ValueError(f"prior error must be a positive number, got {prior_error}")
    # The user's load test of one replica at the profile's reference token mix, scaled by how wrong
    # it is (prior_error 0.5: it found half the truth); never the trace's tokens nor the simulator's
    # throughput at them.
    tested = profile if load_test_tokens is None else replace(
        profile, reference_input_tokens=load_test_tokens[0], reference_output_tokens=load_test_tokens[1])
    load_test = tested.load_test(slo_metric, slo_p95_s)
    policy_config = PolicyConfig(
        slo_p95_s=slo_p95_s,
        slo_metric=slo_metric,  # type: ignore[arg-type]
        warm_floor=1,
        # What a user would set: room for twice the peak they planned for.
        max_replicas=max_replicas or max(10, 2 * peak),
        gpus_per_replica=profile.gpus_per_replica,
        price_per_gpu_hour=profile.price_per_gpu_hour,
        # Priors a user would take from a load test of one replica; the configured cold start is
        # deliberately not passed (cold_start_prior_s keeps its default): the policy must learn it.
        max_concurrency=load_test.concurrency,
        replica_capacity_rps=round(load_test.capacity_rps * prior_error, 2),
    )
    batch = arrivals.classes["batch"]
    if batch.total > 0:
        # A trace with batch requests runs the batch pool on spot, as a user who has batch work would:
        # sized for twice its mean work at full batches, priced at the middle of the published spot
        # discount (40-70 % under on-demand), preempted by `spot_trace` or, without one, by the
        # published process drawn from the seed.
        work_s = float((batch.count * (batch.input_tokens / profile.prefill_tokens_per_s + batch.output_tokens
                                       * profile.tpot_s(profile.max_num_seqs) / profile.max_num_seqs)).sum())
        batch_max = max(2, math.ceil(2.0 * work_s / (arrivals.n_ticks * arrivals.tick_s)))
        policy_config = replace(policy_config, batch=BatchConfig(
            enabled=True, max_replicas=batch_max, price_per_gpu_hour=round(profile.price_per_gpu_hour * SPOT_PRICE_SHARE, 2)))
        if spot_trace is None:
            spot_trace = synthesize_spot_trace(seed, arrivals.n_ticks * arrivals.tick_s, batch_max)
    config = SimConfig(profile=profile, policy_config=policy_config, slo_metric=slo_metric,
                       slo_p95_s=slo_p95_s, seed=seed, queue_limit=queue_limit,
                       initial_replicas=warm_replicas(need, arrivals.tick_s, policy_config),
                       spot_trace=spot_trace if batch.total > 0 else None)
    return Scenario(trace, arrivals, profile, config, peak)


def warm_replicas(need: np.ndarray, tick_s: float, config: PolicyConfig, window_s: float = 60.0) -> int:
    """Replicas a deployment already serving the trace's first minute would have: enough to meet the
    SLO there (the most the clairvoyant's step-1 `need` asks in that minute: its busiest 10 s at the batch
    the SLO allows), within the floor and the max. Sized at the mean rate instead, the pool ran at
    full utilisation and every policy missed the first windows until its first new replicas were
    Ready, whatever it decided."""
    ticks = max(1, min(len(need), round(window_s / tick_s)))
    needed = int(need[:ticks].max()) if len(need) else 1
    return max(config.warm_floor, 1, min(needed, config.max_replicas))


def policy_runs(names: list[str], scenario: Scenario, sweep: bool) -> list[tuple[str, dict[str, Any]]]:
    """(name, params) for every run: one per policy, or with --sweep each baseline's pass-1 target grid
    (`leadtime.sim.sweep.run_sweep` adds pass 2, the behaviour knobs around the best targets)."""
    runs: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        if name not in POLICY_NAMES:
            raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICY_NAMES)})")
        if name == "static":
            # Peak provisioning: the most the clairvoyant ever runs, so static meets the SLO at peak cost.
            runs.append((name, {"replicas": scenario.clairvoyant_plan.peak}))
        elif sweep and name in SWEPT:
            runs.extend(sweep_plan.first_pass([name], scenario.config.policy_config))
        else:
            runs.append((name, {}))
    return runs


def build_policy(name: str, params: dict[str, Any], scenario: Scenario) -> Policy:
    if name == "clairvoyant":
        return ClairvoyantPolicy(scenario.clairvoyant_plan, scenario.arrivals.tick_s,
                                 scenario.profile.cold_start.quantile_s(0.95), scenario.config.epoch_s)
    return make_policy(name, **params)


def run_one(name: str, params: dict[str, Any], scenario: Scenario, *, record_timeline: bool = True,
            progress: Callable[[float], None] | None = None) -> RunResult:
    if name == "bound":
        return bound_result(scenario.arrivals, scenario.config)
    policy = build_policy(name, params, scenario)
    merged = {**getattr(policy, "params", lambda: {})(), **params}
    if name == "clairvoyant":
        # Planning already ran the clairvoyant's final schedule in the simulator: that run is its result,
        # and its wall time is the whole planning.
        plan = scenario.clairvoyant_plan
        return _bounded(replace(plan.run, params=merged, wall_s=plan.wall_s), scenario)
    config = scenario.config
    if name == "static":
        # Peak provisioning has always been at its count: it starts there, not from the warm pool.
        config = replace(config, initial_replicas=0)
    result = simulate(policy, scenario.arrivals, config, params=merged, record_timeline=record_timeline,
                      progress=progress)
    if result.metrics.batch_cost_usd is not None and config.policy_config.batch.enabled:
        result = replace(result, metrics=replace(result.metrics, batch_ondemand_cost_usd=_batch_on_demand_usd(
            name, params, scenario, config)))
    return _bounded(result, scenario)


def _batch_on_demand_usd(name: str, params: dict[str, Any], scenario: Scenario, config: SimConfig) -> float:
    """The same policy with the batch pool on on-demand nodes: on-demand price, no preemptions."""
    on_demand = replace(config, spot_trace=None, spot_capacity=None, policy_config=replace(
        config.policy_config, batch=replace(config.policy_config.batch,
                                            price_per_gpu_hour=config.policy_config.price_per_gpu_hour)))
    rerun = simulate(build_policy(name, params, scenario), scenario.arrivals, on_demand, params=params,
                     record_timeline=False)
    return float(rerun.metrics.batch_cost_usd or 0.0)


def _bounded(result: RunResult, scenario: Scenario) -> RunResult:
    """The run with its GPU-hours over the bound's and its own floor (the bound less unfinished work)."""
    floor = run_floor_gpu_hours(scenario.bound, result.metrics, scenario.profile)
    return with_x_bound(result, scenario.bound.gpu_hours, floor)


def ceil_div(a: float, b: float) -> int:
    return math.ceil(a / b) if b else 0
