"""Pods -> PoolState: ready with cold starts, starting with ages, unschedulable as pending."""

from __future__ import annotations

from leadtime.k8s.pods import parse_time, pool_state

T0 = parse_time("2025-01-01T00:00:00Z")


def pod(created: str, *, ready_at: str | None = None, unschedulable: bool = False, deleting: bool = False, phase="Running"):
    conditions = []
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"})
    else:
        conditions.append({"type": "PodScheduled", "status": "True"})
    if ready_at:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": ready_at})
    else:
        conditions.append({"type": "Ready", "status": "False", "lastTransitionTime": created})
    meta = {"name": "p", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


def test_pool_state_classifies_pods():
    pods = [
        pod("2025-01-01T00:00:00Z", ready_at="2025-01-01T00:00:45Z"),
        pod("2025-01-01T00:01:00Z", ready_at="2025-01-01T00:01:20Z"),
        pod("2025-01-01T00:02:00Z"),  # scheduled, model loading
        pod("2025-01-01T00:02:30Z", unschedulable=True),  # no GPU node has room
        pod("2025-01-01T00:00:00Z", ready_at="2025-01-01T00:00:30Z", deleting=True),
        pod("2025-01-01T00:00:00Z", phase="Failed"),
    ]
    state = pool_state(pods, desired=4, now_s=T0 + 180)
    assert state.desired == 4
    assert [p.cold_start_s for p in state.ready] == [45.0, 20.0]
    assert state.ready[1].ready_at_s == T0 + 80
    assert state.starting_ages_s == (60.0,)
    assert state.pending_ages_s == (30.0,)


def test_pod_without_conditions_yet_is_starting():
    state = pool_state([{"metadata": {"creationTimestamp": "2025-01-01T00:00:00Z"}, "status": {"phase": "Pending"}}],
                       desired=1, now_s=T0 + 2)
    assert state.starting_ages_s == (2.0,) and state.ready_count == 0
