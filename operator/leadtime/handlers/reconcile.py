"""One control tick for one ModelDeployment: read, decide, apply, report. No kopf in here.

The tick is a thin shell around `decide()`: every number of replicas comes from the policy; this module
only moves data between Prometheus, the Kubernetes API and the policy, and writes down what happened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from leadtime.api import conditions as c
from leadtime.api.convert import InvalidModelDeployment, parse_spec, to_policy_config
from leadtime.handlers import status as st
from leadtime.handlers.ledger import Ledger, Prices, advance
from leadtime.k8s.pods import parse_time
from leadtime.metrics.promql import TemplateError, render_queries
from leadtime.metrics.source import REASON_NO_DATA, MetricsReading, MetricsSource
from leadtime.policy.types import INTERACTIVE, Decision, Memory, Observation, PolicyConfig, PoolState

log = logging.getLogger("leadtime.decisions")

# Keys of `.status.memory`: the policy's memory and the ledger's running sums, kept apart so neither can
# overwrite the other.
POLICY_MEMORY = "policy"
LEDGER_MEMORY = "ledger"

Decide = Callable[[PolicyConfig, Observation, Mapping[str, PoolState], Memory, float], Decision]
# Called with (md, pool, prometheus url) just before a pool scales down; returns the pod deletion costs set.
BeforeScaleDown = Callable[[Mapping[str, Any], str, str], Mapping[str, int]]


class ClusterPort(Protocol):
    def read_pools(self, md: Mapping[str, Any], now_s: float) -> dict[str, PoolState]: ...
    def scale(self, md: Mapping[str, Any], pool: str, replicas: int) -> None: ...
    def patch_status(self, md: Mapping[str, Any], patch: Mapping[str, Any]) -> None: ...


class EventPort(Protocol):
    def __call__(self, md: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...


@dataclass
class TickResult:
    decision: Decision | None
    reading: MetricsReading | None
    scaled: dict[str, tuple[int, int]] = field(default_factory=dict)  # pool -> (from, to)
    deletion_costs: dict[str, dict[str, int]] = field(default_factory=dict)  # pool -> pod -> cost
    status: dict[str, Any] = field(default_factory=dict)
    spec_problem: str | None = None


def spec_dict(spec: Any) -> dict[str, Any]:
    """The validated spec with every default filled in, camelCase, as the k8s builders read it."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def run_tick(
    md: Mapping[str, Any],
    *,
    cluster: ClusterPort,
    metrics_source: Callable[[str], MetricsSource],
    decide: Decide,
    post_event: EventPort,
    now_s: float,
    default_prometheus_url: str = "",
    before_scale_down: BeforeScaleDown | None = None,
) -> TickResult:
    metadata = md["metadata"]
    previous_status: Mapping[str, Any] = md.get("status") or {}
    previous_memory: Mapping[str, Any] = previous_status.get("memory") or {}
    generation = metadata.get("generation")

    try:
        spec = parse_spec(md.get("spec") or {})
    except InvalidModelDeployment as err:
        # The schema should have caught it; report it rather than act on a spec we cannot read.
        result = TickResult(decision=None, reading=None, spec_problem=f"invalid spec: {err}")
        result.status = {"conditions": st.with_conditions(
            previous_status.get("conditions"), {c.DEGRADED: (c.TRUE, c.REASON_INVALID_SPEC, result.spec_problem)},
            now_s, generation)}
        cluster.patch_status(md, st.merge_patch(_owned(previous_status, result.status), result.status))
        return result

    config = to_policy_config(spec)
    shadow = spec.mode == "shadow"
    spec_problem: str | None = None

    url = spec.metrics.prometheus_url or default_prometheus_url
    try:
        queries = render_queries(
            spec_dict(spec)["metrics"]["queries"], namespace=metadata["namespace"], name=metadata["name"],
            window=spec.metrics.window, slo_metric=config.slo_metric,
        )
    except TemplateError as err:
        queries, spec_problem = None, f"metrics.queries: {err}"
    if queries is None:
        reading = MetricsReading(Observation(at_s=now_s, available=False), reason=c.REASON_QUERY_FAILED,
                                 message=spec_problem or "")
    elif not url:
        reading = MetricsReading(Observation(at_s=now_s, available=False), reason=REASON_NO_DATA,
                                 message="no Prometheus URL: set spec.metrics.prometheusUrl or --prometheus-url")
    else:
        reading = metrics_source(url).read(queries, now_s)
        if reading.query_error:
            spec_problem = reading.message

    pools = cluster.read_pools(md, now_s)
    decision = decide(config, reading.observation, pools, dict(previous_memory.get(POLICY_MEMORY) or {}), now_s)

    result = TickResult(decision=decision, reading=reading, spec_problem=spec_problem)
    for pool, pool_decision in decision.pools.items():
        current = pools.get(pool, PoolState()).desired
        if pool not in pools or pool_decision.replicas == current:
            continue
        if not shadow:
            if before_scale_down is not None and pool_decision.replicas < current:
                result.deletion_costs[pool] = dict(before_scale_down(md, pool, url))
            cluster.scale(md, pool, pool_decision.replicas)
            pools[pool] = PoolState(desired=pool_decision.replicas, ready=pools[pool].ready,
                                    starting_ages_s=pools[pool].starting_ages_s,
                                    pending_ages_s=pools[pool].pending_ages_s)
        result.scaled[pool] = (current, pool_decision.replicas)
        verb = "ScaledUp" if pool_decision.replicas > current else "ScaledDown"
        prefix = "shadow: would scale" if shadow else "scaled"
        post_event(md, "Normal", verb, f"{prefix} {pool} {current}→{pool_decision.replicas}: {pool_decision.reason}")

    last_at_s = parse_time((previous_status.get("lastDecision") or {}).get("at"))
    ledger = advance(
        Ledger.from_memory(previous_memory.get(LEDGER_MEMORY)),
        pools=pools, observation=reading.observation,
        prices=Prices(gpus_per_replica=config.gpus_per_replica,
                      interactive_per_gpu_hour=config.price_per_gpu_hour,
                      batch_per_gpu_hour=config.batch.price_per_gpu_hour,
                      max_concurrency=config.max_concurrency),
        elapsed_s=0.0 if last_at_s is None else now_s - last_at_s,
    )

    metrics_condition = (
        (c.TRUE, c.REASON_METRICS_READ, reading.message or "metrics read")
        if reading.observation.available else (c.FALSE, reading.reason, reading.message)
    )
    conditions = st.with_conditions(previous_status.get("conditions"), {
        c.READY: st.ready_condition(pools, shadow),
        c.METRICS_AVAILABLE: metrics_condition,
        c.SCALING: st.scaling_condition(decision, pools),
        c.DEGRADED: st.degraded_condition(spec_problem, decision, reading, config.slo_p95_s),
    }, now_s, generation)
    interactive = pools.get(INTERACTIVE, PoolState())
    result.status = {
        "observedGeneration": generation,
        "readyReplicas": interactive.ready_count,
        "desiredReplicas": decision.pools[INTERACTIVE].replicas if INTERACTIVE in decision.pools else interactive.desired,
        "pools": st.pools_status(pools),
        "observation": st.observation_status(reading),
        "lastDecision": st.decision_status(decision, now_s),
        "learnedColdStartP90Seconds": st._round(decision.lead_time_s, 2),
        "cost": ledger.to_status(),
        "conditions": conditions,
        "memory": {POLICY_MEMORY: decision.memory, LEDGER_MEMORY: ledger.to_memory()},
    }
    cluster.patch_status(md, st.merge_patch(_owned(previous_status, result.status), result.status))
    log.info(json.dumps(decision_log_line(md, result, shadow, now_s), separators=(",", ":")))
    return result


def _owned(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys this tick writes take part in the diff, so others' status fields are left alone."""
    return {k: previous[k] for k in new if k in previous}


def decision_log_line(md: Mapping[str, Any], result: TickResult, shadow: bool, now_s: float) -> dict[str, Any]:
    """One structured line per decision: what was seen, what was decided and why."""
    decision, reading = result.decision, result.reading
    obs = reading.observation if reading else None
    return {
        "event": "decision",
        "ts": round(now_s, 3),
        "namespace": md["metadata"]["namespace"],
        "name": md["metadata"]["name"],
        "mode": "shadow" if shadow else "active",
        "metrics": reading.reason if reading else None,
        "queue": obs.interactive.queue_depth if obs else None,
        "arrivalRps": obs.interactive.arrival_rate_rps if obs else None,
        "p95S": obs.interactive.p95_latency_s if obs else None,
        "replicas": {p: d.replicas for p, d in decision.pools.items()} if decision else {},
        "scaled": {p: list(v) for p, v in result.scaled.items()},
        "deletionCosts": result.deletion_costs,
        "held": decision.held if decision else None,
        "forecastRps": decision.forecast_rps if decision else None,
        "leadTimeS": decision.lead_time_s if decision else None,
        "reason": decision.pools[INTERACTIVE].reason if decision and INTERACTIVE in decision.pools else result.spec_problem,
    }

