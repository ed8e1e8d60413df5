"""Build `.status` from one control tick (pure): pools, observation, decision, conditions, cost, memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from leadtime.api import conditions as c
from leadtime.metrics.source import MetricsReading
from leadtime.policy.types import BATCH_ONDEMAND, INTERACTIVE, Decision, PoolState


def iso(now_s: float) -> str:
    return c.format_time(datetime.fromtimestamp(now_s, tz=UTC))


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: removed keys become null."""
    if not isinstance(new, Mapping) or not isinstance(old, Mapping):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old or old[key] != value:
            patch[key] = merge_patch(old.get(key), value)
    return patch


def pools_status(pools: Mapping[str, PoolState]) -> dict[str, dict[str, int]]:
    return {
        pool: {"ready": s.ready_count, "starting": s.starting_count, "pending": len(s.pending_ages_s), "desired": s.desired}
        for pool, s in pools.items()
    }


def observation_status(reading: MetricsReading) -> dict[str, Any]:
    obs = reading.observation
    return {
        "at": iso(obs.at_s),
        "arrivalRateRps": _round(obs.interactive.arrival_rate_rps),
        "queueDepth": _round(obs.interactive.queue_depth),
        "running": _round(obs.interactive.running),
        "p95LatencySeconds": _round(obs.interactive.p95_latency_s),
        "batchArrivalRateRps": _round(obs.batch.arrival_rate_rps),
        "batchQueueDepth": _round(obs.batch.queue_depth),
    }


def decision_status(decision: Decision, now_s: float) -> dict[str, Any]:
    interactive = decision.pools.get(INTERACTIVE)
    reasons = [f"{pool}: {d.reason}" for pool, d in decision.pools.items() if pool != INTERACTIVE]
    return {
        "at": iso(now_s),
        # The interactive reason first: it is the one users read in `kubectl describe`.
        "reason": "; ".join(([interactive.reason] if interactive else []) + reasons),
        "replicas": {pool: d.replicas for pool, d in decision.pools.items()},
        "forecastRps": _round(decision.forecast_rps),
        "leadTimeSeconds": _round(decision.lead_time_s),
        "held": decision.held,
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def ready_condition(pools: Mapping[str, PoolState], shadow: bool) -> tuple[str, str, str]:
    interactive = pools.get(INTERACTIVE, PoolState())
    have, want = interactive.ready_count, interactive.desired
    if shadow:
        status = c.TRUE if have >= want else c.FALSE
        return status, c.REASON_SHADOW_MODE, f"shadow mode: {have}/{want} replicas ready, Deployments left alone"
    if have >= want:
        return c.TRUE, c.REASON_REPLICAS_READY, f"{have}/{want} interactive replicas ready"
    if interactive.pending_ages_s:
        return c.FALSE, c.REASON_REPLICAS_PENDING, f"{have}/{want} ready, {len(interactive.pending_ages_s)} pending: no node has room"
    return c.FALSE, c.REASON_REPLICAS_STARTING, f"{have}/{want} ready, {interactive.starting_count} starting"


def scaling_condition(decision: Decision | None, pools: Mapping[str, PoolState]) -> tuple[str, str, str]:
    if decision is None or decision.held:
        return c.FALSE, c.REASON_HELD_NO_METRICS, "replicas held where they were"
    up = [p for p, d in decision.pools.items() if d.replicas > pools.get(p, PoolState()).ready_count]
    down = [p for p, d in decision.pools.items()
            if d.replicas < pools.get(p, PoolState()).ready_count + pools.get(p, PoolState()).starting_count]
    if up:
        return c.TRUE, c.REASON_SCALING_UP, "scaling up " + ", ".join(up)
    if down:
        return c.TRUE, c.REASON_SCALING_DOWN, "scaling down " + ", ".join(down)
    return c.FALSE, c.REASON_STABLE, "every pool has the replicas it needs"


def degraded_condition(
    spec_problem: str | None, decision: Decision | None, reading: MetricsReading | None, slo_p95_s: float | None
) -> tuple[str, str, str]:
    if spec_problem:
        return c.TRUE, c.REASON_INVALID_SPEC, spec_problem
    if decision is not None and decision.pools.get(BATCH_ONDEMAND) and decision.pools[BATCH_ONDEMAND].replicas > 0:
        return c.TRUE, c.REASON_SPOT_UNAVAILABLE, decision.pools[BATCH_ONDEMAND].reason
    p95 = reading.observation.interactive.p95_latency_s if reading and reading.observation.available else None
    if p95 is not None and slo_p95_s is not None and p95 > slo_p95_s:
        return c.TRUE, c.REASON_SLO_BREACHED, f"p95 {p95:.2f} s > SLO {slo_p95_s:.2f} s"
    return c.FALSE, c.REASON_AS_EXPECTED, "no problem found"


def with_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    updates: Mapping[str, tuple[str, str, str]],
    now_s: float,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Set each condition; lastTransitionTime moves only when its status changes."""
    now = datetime.fromtimestamp(now_s, tz=UTC)
    result = [dict(x) for x in previous or ()]
    for type_, (status, reason, message) in updates.items():
        result = c.set_condition(result, type_, status, reason, message[:1024], now, generation)  # type: ignore[arg-type]
    order = {t: i for i, t in enumerate(c.CONDITION_TYPES)}
    return sorted(result, key=lambda x: order.get(x["type"], len(order)))
