"""leadtime's own policy: `decide()` composed from the small steps in the sibling modules.

Order of the chain (each step is a plain function, tested alone):
1. learn the lead time from the pools' start→Ready durations (`lead_time.learn_lead_time`);
2. check the metrics are fresh, else hold (`check_metrics`);
3. learn the per-replica capacity (`capacity.learn_capacity`);
4. forecast demand one lead time ahead (`forecast.update_forecast`) and add the backlog to drain;
5. size the pool with the queueing model (`sizing.replicas_for_p95`), plus a reactive correction;
6. apply floors and the max (`bounds`);
7. gate scale-down (`gate_scale_down`): stabilisation, cost, forecast vs ready capacity, gentle steps;
8. size the batch pool and its on-demand fallback (`batch.plan_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from leadtime.policy.batch import plan_batch
from leadtime.policy.bounds import clamp, floor_replicas, record_windowed_max
from leadtime.policy.capacity import CapacityEstimate, learn_capacity
from leadtime.policy.forecast import Forecast, noise_scale_rps, update_forecast
from leadtime.policy.lead_time import learn_lead_time
from leadtime.policy.sizing import replicas_for_p95
from leadtime.policy.types import (
    BATCH,
    BATCH_ONDEMAND,
    INTERACTIVE,
    Decision,
    Memory,
    Observation,
    PolicyConfig,
    PoolDecision,
    PoolState,
)

MEMORY_VERSION = 1
# Metrics older than this are as good as missing: a decision on a 2-minute-old queue is a guess.
# At least a few control intervals, so one slow scrape does not freeze the pool.
STALE_AFTER_S = 60.0
STALE_AFTER_INTERVALS = 4
# A queue longer than this share of the pool's slots means the replicas are saturated.
SATURATED_QUEUE_SHARE = 0.02
# Scale down by at most this share of the pool per decision (at least one replica).
MAX_SCALE_DOWN_SHARE = 0.1
# Ski rental: a surplus replica is worth keeping while the time until it is needed again is shorter
# than this many cold starts (the GPU time a fresh start burns, plus the SLO risk while it starts).
COLD_START_RISK_FACTOR = 2.0
SIZING_LIMIT = 100_000
# Hysteresis: a scale-down must leave enough replicas for the demand plus this many noise scales
# (√(demand × one replica's capacity), about a quarter of a replica at 1 replica of demand, 1.25 at
# 25), so the ordinary wobble of the forecast right after a scale-down does not ask for the replica
# back — the up path and the scale-down gate then never disagree about the same demand.
SCALE_DOWN_HYSTERESIS = 0.25
# Ski rental for the stabilisation window (cost-aware scale-down): keeping an idle replica costs its
# GPU by the second, dropping it costs a cold start when it is needed again, so waiting
# `COLD_START_RISK_FACTOR` lead times before removing it never costs more than twice the best choice
# made with hindsight. That bound ignores the SLO, so it is used only while demand holds no surprise:
# after a p95 breach, or a replica asked back within the configured window, the full configured
# window applies for `SURPRISE_MEMORY_S`. Never shorter than one metrics window (the rates must
# have seen the lower load).
SURPRISE_MEMORY_S = 3600.0
MIN_STABILIZATION_S = 60.0


def check_metrics(observation: Observation, config: PolicyConfig) -> str | None:
    """Why the metrics cannot be used (unavailable, stale, no arrival rate), or None when they can."""
    stale_after_s = max(STALE_AFTER_S, STALE_AFTER_INTERVALS * config.control_interval_s)
    if not observation.available:
        return "metrics unavailable"
    if observation.stale_s > stale_after_s:
        return f"metrics {observation.stale_s:.0f} s old (limit {stale_after_s:.0f} s)"
    if observation.interactive.arrival_rate_rps is None:
        return "no interactive arrival rate"
    return None


@dataclass(frozen=True)
class Demand:
    """What the interactive pool is sized for, and why."""

    forecast: Forecast
    margin_rps: float  # headroom: the 95th percentile of recent forecast errors (forecast.margin_rps)
    backlog_rps: float  # queue to drain, spread over the horizon
    demand_rps: float  # forecast peak + margin + backlog


def estimate_demand(
    config: PolicyConfig,
    observation: Observation,
    forecast_memory: Memory | None,
    horizon_s: float,
    capacity: CapacityEstimate,
    now_s: float,
) -> tuple[Demand, Memory]:
    observed_rps = observation.interactive.arrival_rate_rps or 0.0
    forecast, memory = update_forecast(
        forecast_memory,
        observed_rps,
        horizon_s if config.forecast_enabled else 0.0,
        now_s,
        capacity.rps_per_replica,
    )
    margin_rps = forecast.margin_rps if config.forecast_enabled else 0.0
    queue_depth = observation.interactive.queue_depth or 0.0
    backlog_rps = queue_depth / max(horizon_s, config.slo_p95_s, 1.0)
    demand_rps = forecast.peak_rps + margin_rps + backlog_rps
    return Demand(forecast, margin_rps, backlog_rps, demand_rps), memory


def size_interactive(
    config: PolicyConfig,
    observation: Observation,
    pool: PoolState,
    demand: Demand,
    capacity: CapacityEstimate,
) -> tuple[int, str]:
    """Replicas the queueing model asks for, raised by one when the SLO is breaking right now."""
    # Size without the max so the reason tells the real need; the max is applied afterwards.
    sized = replicas_for_p95(demand.demand_rps, capacity.rps_per_replica, config, SIZING_LIMIT)
    horizon_s = demand.forecast.horizon_s
    reason = (
        f"forecast {demand.demand_rps:.1f} rps in {horizon_s:.0f} s needs {sized} replicas "
        f"(p95 model, {capacity.rps_per_replica:.2f} rps/replica {capacity.source})"
    )
    interactive = observation.interactive
    queue_depth = interactive.queue_depth or 0.0
    saturated = queue_depth > max(1.0, SATURATED_QUEUE_SHARE * pool.ready_count * config.max_concurrency)
    slo_broken = interactive.p95_latency_s is not None and interactive.p95_latency_s > config.slo_p95_s
    # Only when nothing is already on its way: replicas that are starting or pending will add
    # capacity, and adding more for the same breach is how 2→4→8 cascades start.
    nothing_on_the_way = pool.starting_count == 0 and not pool.pending_ages_s
    if slo_broken and saturated and nothing_on_the_way and sized <= pool.ready_count:
        sized = pool.ready_count + 1
        reason = (
            f"p95 {interactive.p95_latency_s:.2f} s over the {config.slo_p95_s:.2f} s SLO with "
            f"{queue_depth:.0f} queued: adding a replica to {sized} (reactive correction)"
        )
    return sized, reason


def hold_target(config: PolicyConfig, demand: Demand, capacity: CapacityEstimate, floor: int) -> int:
    """The fewest replicas a scale-down may leave: the demand plus hysteresis still fits in them."""
    noise_rps = noise_scale_rps(demand.demand_rps, capacity.rps_per_replica)
    held_demand_rps = demand.demand_rps + SCALE_DOWN_HYSTERESIS * noise_rps if demand.demand_rps > 0 else 0.0
    sized = replicas_for_p95(held_demand_rps, capacity.rps_per_replica, config, SIZING_LIMIT)
    return clamp(sized, floor, config.max_replicas)


def note_surprise(
    config: PolicyConfig, observation: Observation, pool: PoolState, target: int, memory: Memory, now_s: float
) -> float | None:
    """Record what shows demand returning faster than the forecast sees; returns the latest such time.

    Two things count: a p95 over the SLO, and a scale-up asked for within the configured
    stabilisation window of a scale-down (the replica removed was needed back: on noisy steady load
    a short window would otherwise remove and re-add a replica every few minutes). `memory` is
    updated in place.
    """
    p95_s = observation.interactive.p95_latency_s
    if p95_s is not None and p95_s > config.slo_p95_s:
        memory["last_breach_s"] = now_s
    last_down_s = memory.get("last_down_s")
    if target > pool.desired and last_down_s is not None and now_s - last_down_s < config.scale_down_stabilization_s:
        memory["last_regret_s"] = now_s
    times = [memory[key] for key in ("last_breach_s", "last_regret_s") if memory.get(key) is not None]
    return max(times) if times else None


def stabilization_window_s(
    config: PolicyConfig, lead_time_s: float, last_surprise_s: float | None, now_s: float
) -> tuple[float, str]:
    """The configured window, or the shorter ski-rental break-even while demand has held no surprise.

    Cost-aware only; a surprise (`note_surprise`) restores the configured window for
    `SURPRISE_MEMORY_S`. Returns (window_s, note): the note says why a window is shorter, for the reason.
    """
    window_s = config.scale_down_stabilization_s
    recent = last_surprise_s is not None and now_s - last_surprise_s < SURPRISE_MEMORY_S
    if config.scale_down_cost_aware and not recent:
        break_even_s = max(MIN_STABILIZATION_S, COLD_START_RISK_FACTOR * lead_time_s)
        if break_even_s < window_s:
            return break_even_s, (
                f"; {break_even_s:.0f} s = cold-start break-even, no SLO breach or replica asked back "
                f"for {SURPRISE_MEMORY_S / 60:.0f} min"
            )
    return window_s, ""


def gate_scale_down(
    config: PolicyConfig,
    pool: PoolState,
    target: int,
    hold: int,
    floor: int,
    demand: Demand,
    capacity: CapacityEstimate,
    lead_time_s: float,
    history: list[list[float]],
    now_s: float,
    window: tuple[float, str],
) -> tuple[int, str | None, list[list[float]]]:
    """Decide how far to follow a target below the current replicas. Returns (replicas, why, history).

    `why` is None when the target is followed as is (scale up or steady). `hold` (≥ target) is the
    count that still covers demand with hysteresis: the stabilisation window keeps the maximum of
    those, so a scale-down never lands on a count the next decision's target would exceed.
    """
    current = min(pool.desired, config.max_replicas)
    window_s, window_note = window  # from stabilization_window_s
    if not history:
        # No history (first decision, or memory lost): behave as if the current count had just been
        # recommended, so a restart never scales down before a full window has passed.
        history = [[now_s, float(current)]]
    history, stabilised = record_windowed_max(history, now_s, max(hold, target), window_s)
    if target >= current:
        return target, None, history
    if stabilised >= current:
        return (
            current,
            f"target {target} held at {current} for the {window_s:.0f} s stabilisation window "
            f"(with hysteresis {stabilised} needed in it{window_note})",
            history,
        )
    ready_capacity_rps = pool.ready_count * capacity.rps_per_replica
    if demand.demand_rps > ready_capacity_rps:
        return (
            current,
            (
                f"not scaling down: forecast {demand.demand_rps:.1f} rps exceeds ready capacity "
                f"{ready_capacity_rps:.1f} rps"
            ),
            history,
        )
    if config.scale_down_cost_aware:
        trend_rps_per_s = demand.forecast.trend_rps_per_s
        demand_per_replica_rps = demand.demand_rps / target if target > 0 else capacity.rps_per_replica
        needed_again_rps = (current - 1) * demand_per_replica_rps
        if trend_rps_per_s > 0:
            needed_again_in_s = max(needed_again_rps - demand.forecast.level_rps, 0.0) / trend_rps_per_s
        else:
            needed_again_in_s = math.inf
        break_even_s = COLD_START_RISK_FACTOR * lead_time_s
        if needed_again_in_s < break_even_s:
            return (
                current,
                (
                    f"not scaling down: demand rising, replica needed again in ~{needed_again_in_s:.0f} s "
                    f"< {break_even_s:.0f} s of cold-start risk"
                ),
                history,
            )
    step = max(1, math.ceil(MAX_SCALE_DOWN_SHARE * current))
    replicas = max(stabilised, current - step, floor)
    return (
        replicas,
        f"scaling down {current}→{replicas} (target {target}, stable for {window_s:.0f} s{window_note})",
        history,
    )


def _hold(
    config: PolicyConfig,
    pools: Mapping[str, PoolState],
    memory: Memory,
    why: str,
    floor: int,
    lead_time_s: float,
) -> Decision:
    interactive = pools.get(INTERACTIVE, PoolState())
    held = clamp(interactive.desired, floor, config.max_replicas)
    reason = f"{why}: holding {held} replicas"
    if held > interactive.desired:
        reason = f"{why}: raising to the floor of {held} replicas"
    decisions = {INTERACTIVE: PoolDecision(held, reason)}
    if config.batch.enabled:
        spot = pools.get(BATCH, PoolState())
        ondemand = pools.get(BATCH_ONDEMAND, PoolState())
        spot_held = clamp(spot.desired, 0, config.batch.max_replicas)
        ondemand_held = clamp(ondemand.desired, 0, config.batch.fallback_max_replicas)
        decisions[BATCH] = PoolDecision(spot_held, f"{why}: holding {spot_held} replicas")
        decisions[BATCH_ONDEMAND] = PoolDecision(ondemand_held, f"{why}: holding {ondemand_held} replicas")
    return Decision(pools=decisions, memory=memory, lead_time_s=lead_time_s, forecast_rps=None, held=True)


def decide(
    config: PolicyConfig,
    observation: Observation,
    pools: Mapping[str, PoolState],
    memory: Memory | None,
    now_s: float,
) -> Decision:
    """Desired replicas for every pool now, so capacity is Ready when the forecast demand arrives."""
    previous: Memory = dict(memory or {})
    interactive_pool = pools.get(INTERACTIVE, PoolState())
    floor, floor_source = floor_replicas(config, now_s)

    lead_time_memory = dict(previous.get("lead_time", {}))
    lead_time_s, lead_time_memory[INTERACTIVE], lead_time_source = learn_lead_time(
        interactive_pool, lead_time_memory.get(INTERACTIVE), config.cold_start_prior_s
    )
    new_memory: Memory = {**previous, "version": MEMORY_VERSION, "lead_time": lead_time_memory}

    why_not = check_metrics(observation, config)
    if why_not is not None:
        return _hold(config, pools, new_memory, why_not, floor, lead_time_s)

    capacity, new_memory["capacity"] = learn_capacity(
        config, observation.interactive, interactive_pool.ready_count, previous.get("capacity"), now_s
    )
    horizon_s = lead_time_s + config.control_interval_s
    demand, new_memory["forecast"] = estimate_demand(
        config, observation, previous.get("forecast"), horizon_s, capacity, now_s
    )
    sized, reason = size_interactive(config, observation, interactive_pool, demand, capacity)
    target = clamp(sized, floor, config.max_replicas)
    if target > sized:
        reason += f"; {floor_source} {floor}"
    elif target < sized:
        reason += f"; capped at max {config.max_replicas}"

    surprise = dict(previous.get("surprise", {}))
    last_surprise_s = note_surprise(config, observation, interactive_pool, target, surprise, now_s)
    replicas, gate_reason, new_memory["scale_down_history"] = gate_scale_down(
        config,
        interactive_pool,
        target,
        hold_target(config, demand, capacity, floor),
        floor,
        demand,
        capacity,
        lead_time_s,
        list(previous.get("scale_down_history", [])),
        now_s,
        stabilization_window_s(config, lead_time_s, last_surprise_s, now_s),
    )
    if replicas < interactive_pool.desired:
        surprise["last_down_s"] = now_s
    new_memory["surprise"] = surprise
    if gate_reason is not None:
        reason = f"{gate_reason}; {reason}"
    replicas = clamp(replicas, floor, config.max_replicas)
    decisions = {INTERACTIVE: PoolDecision(replicas, reason)}

    if config.batch.enabled:
        spot_pool = pools.get(BATCH, PoolState())
        batch_lead_time_s, lead_time_memory[BATCH], _ = learn_lead_time(
            spot_pool, lead_time_memory.get(BATCH), config.cold_start_prior_s
        )
        plan = plan_batch(
            config.batch,
            observation.batch,
            spot_pool,
            capacity.rps_per_replica,
            batch_lead_time_s,
            previous.get("batch"),
            now_s,
        )
        new_memory["batch"] = plan.memory
        decisions[BATCH] = plan.spot
        decisions[BATCH_ONDEMAND] = plan.ondemand

    return Decision(
        pools=decisions,
        memory=new_memory,
        lead_time_s=lead_time_s,
        forecast_rps=demand.demand_rps,
        held=False,
    )


class LeadtimePolicy:
    """The Policy-protocol face of `decide()`, for the simulator and the operator."""

    name = "leadtime"

    def __init__(self, control_interval_s: float = 5.0) -> None:
        self.interval_s = control_interval_s

    @staticmethod
    def default_sweep(config: PolicyConfig | None = None) -> list[dict[str, float]]:
        return [{}]

    def params(self) -> dict[str, float]:
        return {"control_interval_s": self.interval_s}

    def decide(
        self,
        config: PolicyConfig,
        observation: Observation,
        pools: Mapping[str, PoolState],
        memory: Memory,
        now_s: float,
    ) -> Decision:
        return decide(config, observation, pools, memory, now_s)
