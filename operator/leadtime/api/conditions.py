"""Condition types and reasons of a ModelDeployment, and a pure helper to set one.

Conditions follow Kubernetes conventions: a list keyed by `type`, a CamelCase `reason`, and a
`lastTransitionTime` that changes only when `status` changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from .models import Condition

ConditionStatus = Literal["True", "False", "Unknown"]
TRUE: ConditionStatus = "True"
FALSE: ConditionStatus = "False"
UNKNOWN: ConditionStatus = "Unknown"

# --- Types
READY = "Ready"  # the interactive pool has the replicas it was asked for
METRICS_AVAILABLE = "MetricsAvailable"  # Prometheus answered the last decision's queries
SCALING = "Scaling"  # a pool is moving towards its desired replicas
DEGRADED = "Degraded"  # something needs a human: SLO breached, spot missing, spec or API errors

CONDITION_TYPES = (READY, METRICS_AVAILABLE, SCALING, DEGRADED)

# --- Reasons for Ready
REASON_REPLICAS_READY = "ReplicasReady"
REASON_REPLICAS_STARTING = "ReplicasStarting"
REASON_REPLICAS_PENDING = "ReplicasPending"  # no node has room: GPU capacity is missing
REASON_SHADOW_MODE = "ShadowMode"  # decisions are recorded, Deployments left alone

# --- Reasons for MetricsAvailable
REASON_METRICS_READ = "MetricsRead"
REASON_PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"
REASON_QUERY_FAILED = "QueryFailed"
REASON_NO_DATA = "NoData"
REASON_METRICS_STALE = "MetricsStale"

# --- Reasons for Scaling
REASON_SCALING_UP = "ScalingUp"
REASON_SCALING_DOWN = "ScalingDown"
REASON_STABLE = "Stable"
REASON_HELD_NO_METRICS = "HeldNoMetrics"  # metrics unavailable: replicas held where they were

# --- Reasons for Degraded
REASON_AS_EXPECTED = "AsExpected"
REASON_SLO_BREACHED = "SloBreached"
REASON_SPOT_UNAVAILABLE = "SpotUnavailable"  # batch work moved to on-demand nodes
REASON_INVALID_SPEC = "InvalidSpec"
REASON_RECONCILE_FAILED = "ReconcileFailed"


def format_time(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes metav1.Time."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_dict(condition: Mapping[str, Any] | Condition) -> dict[str, Any]:
    if isinstance(condition, Condition):
        return condition.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dict(condition)


def get_condition(
    conditions: Sequence[Mapping[str, Any] | Condition] | None, type_: str
) -> dict[str, Any] | None:
    """The condition of that type as a dict, or None."""
    for condition in conditions or ():
        as_dict = _as_dict(condition)
        if as_dict.get("type") == type_:
            return as_dict
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any] | Condition] | None,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[dict[str, Any]]:
    """A new list (dicts, camelCase, as stored in .status.conditions) with that condition set.

    `lastTransitionTime` becomes `now` only when the status changes (or the condition is new); reason,
    message and observedGeneration are always updated. Other conditions and the order are kept.
    """
    updated: dict[str, Any] = {"type": type_, "status": status, "reason": reason, "message": message}
    if observed_generation is not None:
        updated["observedGeneration"] = observed_generation
    result: list[dict[str, Any]] = []
    found = False
    for condition in conditions or ():
        current = _as_dict(condition)
        if current.get("type") != type_:
            result.append(current)
            continue
        found = True
        unchanged = current.get("status") == status and current.get("lastTransitionTime")
        updated["lastTransitionTime"] = current["lastTransitionTime"] if unchanged else format_time(now)
        result.append(updated)
    if not found:
        updated["lastTransitionTime"] = format_time(now)
        result.append(updated)
    return result
