"""Baselines against hand-computed HPA and Knative KPA behaviour."""

from __future__ import annotations

import pytest
from leadtime.policy import POLICIES, make_policy
from leadtime.policy.baselines.hpa import HpaPolicy, metric_replicas, scale_up_limit
from leadtime.policy.baselines.kpa import KpaPolicy
from leadtime.policy.types import (
    INTERACTIVE,
    ClassObservation,
    Observation,
    PolicyConfig,
    PoolState,
    ReadyPod,
)

CONFIG = PolicyConfig(warm_floor=1, max_replicas=100)


def pool_of(replicas: int, ready: int | None = None) -> dict[str, PoolState]:
    ready = replicas if ready is None else ready
    return {
        INTERACTIVE: PoolState(
            desired=replicas,
            ready=tuple(ReadyPod(0.0, 30.0) for _ in range(ready)),
            starting_ages_s=(5.0,) * (replicas - ready),
        )
    }


def in_flight(queue: float, running: float = 0.0, **kwargs) -> Observation:
    return Observation(at_s=0.0, interactive=ClassObservation(1.0, queue, running, 1.0), **kwargs)


# --- HPA -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "status_replicas", "expected"),
    [
        (54.0, 5, 5),  # ratio 1.08: within the 0.1 tolerance, keep 5
        (46.0, 5, 5),  # ratio 0.92: within tolerance
        (56.0, 5, 6),  # ratio 1.12: ceil(56 / 10)
        (44.0, 5, 5),  # ratio 0.88: ceil(4.4) = 5
        (31.0, 5, 4),  # ratio 0.62: ceil(3.1)
        (25.0, 0, 3),  # no pods yet: ceil(25 / 10)
    ],
)
def test_hpa_ratio_with_tolerance(usage, status_replicas, expected):
    replicas, _ = metric_replicas(usage, 10.0, status_replicas)
    assert replicas == expected


@pytest.mark.parametrize(
    ("current", "expected_limit"),
    [(1, 5), (2, 6), (4, 8), (5, 10), (10, 20)],  # max(current + 4, 2 × current)
)
def test_hpa_scale_up_limit_is_max_of_4_pods_and_100_percent(current, expected_limit):
    assert scale_up_limit(current, [], [], 0.0) == expected_limit


def test_hpa_scale_up_is_rate_limited_per_15_s_period():
    policy = HpaPolicy(target_in_flight_per_pod=10.0)
    decision = policy.decide(CONFIG, in_flight(400.0), pool_of(2), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 6  # wants 40, limit max(2 + 4, 4)
    # 10 s later (same period): the 4 already added count, the limit is still 6
    decision = policy.decide(CONFIG, in_flight(400.0), pool_of(6), decision.memory, 10.0)
    assert decision.pools[INTERACTIVE].replicas == 6
    # next sync, 15 s after the first: a new period from 6 → 12
    decision = policy.decide(CONFIG, in_flight(400.0), pool_of(6), decision.memory, 15.0)
    assert decision.pools[INTERACTIVE].replicas == 12


def test_hpa_scale_down_waits_300_s_for_the_window_maximum():
    policy = HpaPolicy(target_in_flight_per_pod=10.0)
    memory: dict = {}
    replicas, history = 10, []
    for now_s in range(0, 331, 15):
        usage = 100.0 if now_s == 0 else 20.0
        decision = policy.decide(CONFIG, in_flight(usage), pool_of(replicas), memory, float(now_s))
        memory, replicas = decision.memory, decision.pools[INTERACTIVE].replicas
        history.append((now_s, replicas))
    assert all(r == 10 for t, r in history if t < 300)
    assert dict(history)[300] == 2  # 100 % per 15 s allows the whole drop at once


def test_hpa_min_replicas_is_the_warm_floor_and_at_least_one():
    policy = HpaPolicy(target_in_flight_per_pod=10.0)
    decision = policy.decide(PolicyConfig(warm_floor=0), in_flight(0.0), pool_of(0), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 1


def test_hpa_keeps_replicas_when_metrics_fail():
    policy = HpaPolicy(target_in_flight_per_pod=10.0)
    decision = policy.decide(CONFIG, in_flight(500.0, available=False), pool_of(3), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 3
    assert decision.held


# --- KPA -------------------------------------------------------------------------------------------


def run_kpa(policy, concurrency_by_time, replicas, memory=None, ready=None):
    memory = {INTERACTIVE: {"samples": []}} if memory is None else memory
    decision = None
    for now_s, concurrency in concurrency_by_time:
        decision = policy.decide(CONFIG, in_flight(concurrency), pool_of(replicas, ready), memory, now_s)
        memory = decision.memory
    return decision


def test_kpa_stable_mode_targets_70_percent_of_the_concurrency_target():
    policy = KpaPolicy(target_concurrency=10.0)
    decision = run_kpa(policy, [(t, 35.0) for t in range(0, 62, 2)], replicas=5)
    assert decision.pools[INTERACTIVE].replicas == 5  # ceil(35 / 7)
    assert "kpa stable" in decision.pools[INTERACTIVE].reason


def test_kpa_panics_at_twice_the_ready_pods_and_uses_the_6_s_window():
    policy = KpaPolicy(target_concurrency=10.0)
    steady = [(float(t), 14.0) for t in range(0, 60, 2)]
    burst = [(60.0, 100.0), (62.0, 100.0), (64.0, 100.0)]
    decision = run_kpa(policy, steady + burst, replicas=2)
    # panic average over 6 s = 100 → ceil(100 / 7) = 15 ≥ 2 × 2 ready pods
    assert decision.pools[INTERACTIVE].replicas == 15
    assert "kpa panic" in decision.pools[INTERACTIVE].reason


def test_kpa_never_scales_down_while_panicking():
    policy = KpaPolicy(target_concurrency=10.0)
    steady = [(float(t), 14.0) for t in range(0, 60, 2)]
    burst = [(60.0, 100.0), (62.0, 100.0), (64.0, 100.0)]
    after = [(float(t), 14.0) for t in range(66, 100, 2)]
    decision = run_kpa(policy, steady + burst + after, replicas=15, ready=2)
    assert decision.pools[INTERACTIVE].replicas == 15


def test_kpa_scales_down_at_most_by_half_of_ready_pods():
    policy = KpaPolicy(target_concurrency=10.0)
    decision = run_kpa(policy, [(float(t), 0.0) for t in range(0, 64, 2)], replicas=10)
    assert decision.pools[INTERACTIVE].replicas == 5  # floor(10 / 2), not 0


def test_kpa_fresh_autoscaler_starts_in_panic_and_keeps_pods():
    policy = KpaPolicy(target_concurrency=10.0)
    decision = policy.decide(CONFIG, in_flight(0.0), pool_of(8), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 8


# --- static and the registry ----------------------------------------------------------------------


def test_static_is_fixed():
    policy = make_policy("static", replicas=7)
    decision = policy.decide(CONFIG, in_flight(1000.0), pool_of(1), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 7


@pytest.mark.parametrize("name", ["hpa", "kpa", "static"])
def test_each_baseline_has_a_sweep_of_at_least_six_targets(name):
    sweep = POLICIES[name].default_sweep(PolicyConfig(max_concurrency=256, max_replicas=40))
    assert len(sweep) >= 6
    assert len({tuple(sorted(p.items())) for p in sweep}) == len(sweep)
    for params in sweep:
        assert make_policy(name, **params).name == name


def test_make_policy_rejects_unknown_names_and_params():
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("vpa")
    with pytest.raises(ValueError, match="hpa"):
        make_policy("hpa", target=3)


@pytest.mark.parametrize(("name", "interval_s"), [("hpa", 15.0), ("kpa", 2.0), ("leadtime", 5.0)])
def test_intervals(name, interval_s):
    assert make_policy(name).interval_s == interval_s


@pytest.mark.parametrize("slots", [8, 32, 256])
def test_reactive_sweeps_reach_down_to_one_request_per_pod(slots):
    # A replica that holds its SLO may carry only a few requests in flight however many slots it has;
    # a sweep that starts at a share of the slots would never show HPA or Knative tuned conservatively.
    for name, key in (("hpa", "target_in_flight_per_pod"), ("kpa", "target_concurrency")):
        targets = [params[key] for params in POLICIES[name].default_sweep(PolicyConfig(max_concurrency=slots))]
        assert min(targets) == 1.0
        assert max(targets) == float(slots)
        assert len(targets) >= 6
