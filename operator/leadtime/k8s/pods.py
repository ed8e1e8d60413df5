"""Read a pool's pods (as API dicts) into the PoolState the policy sees (pure: `now_s` is passed in)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from leadtime.policy.types import PoolState, ReadyPod


def parse_time(value: Any) -> float | None:
    """RFC 3339 string or datetime -> epoch seconds; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == type_:
            return condition
    return None


def pool_state(pods: Iterable[Mapping[str, Any]], *, desired: int, now_s: float) -> PoolState:
    """Ready pods with their cold starts; scheduled-but-not-Ready pods as starting; Unschedulable as pending.

    Terminating and finished pods are not capacity and are left out. A pod's cold start is the time from
    its creation to its Ready condition's lastTransitionTime.
    """
    ready: list[ReadyPod] = []
    starting: list[float] = []
    pending: list[float] = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if metadata.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        created_s = parse_time(metadata.get("creationTimestamp")) or now_s
        age_s = max(0.0, now_s - created_s)
        ready_condition = _condition(pod, "Ready")
        scheduled = _condition(pod, "PodScheduled")
        if ready_condition and ready_condition.get("status") == "True":
            ready_at_s = parse_time(ready_condition.get("lastTransitionTime")) or now_s
            ready.append(ReadyPod(ready_at_s=ready_at_s, cold_start_s=max(0.0, ready_at_s - created_s)))
        elif scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            pending.append(age_s)
        else:
            starting.append(age_s)
    return PoolState(
        desired=desired,
        ready=tuple(sorted(ready, key=lambda p: p.ready_at_s)),
        starting_ages_s=tuple(sorted(starting)),
        pending_ages_s=tuple(sorted(pending)),
    )
