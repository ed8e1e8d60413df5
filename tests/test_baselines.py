"""Baselines against hand-computed HPA and Knative KPA behaviour."""

from __future__ import annotations

import pytest
from leadtime.policy import POLICIES, make_policy
from leadtime.policy.baselines.hpa import (
    HpaPolicy,
    HpaRpsPolicy,
    KedaWaitingPolicy,
    metric_replicas,
    scale_up_limit,
)
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


def rate(rps: float) -> Observation:
    return Observation(at_s=0.0, interactive=ClassObservation(rps, 0.0, 0.0, 1.0))


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


# --- keda-waiting and hpa-rps: the same HPA on other metrics ------------------------------------


def replicas_over_time(policy, observe, replicas: int, until_s: int, step_s: int = 15) -> dict[int, int]:
    """Sync `policy` every `step_s` from 0 to `until_s` on the observation `observe(now_s)`, the pool
    following each decision at once; replicas decided at each sync."""
    memory: dict = {}
    history = {}
    for now_s in range(0, until_s + 1, step_s):
        decision = policy.decide(CONFIG, observe(now_s), pool_of(replicas), memory, float(now_s))
        memory, replicas = decision.memory, decision.pools[INTERACTIVE].replicas
        history[now_s] = replicas
    return history


def test_keda_waiting_falls_to_the_floor_on_an_empty_queue_after_the_window_however_busy():
    # 400 requests running, none waiting: the waiting-only recipe sees 0 and recommends the floor.
    policy = KedaWaitingPolicy(target_waiting_per_pod=2.0)
    history = replicas_over_time(policy, lambda now_s: in_flight(0.0, running=400.0), replicas=5, until_s=315)
    assert all(r == 5 for t, r in history.items() if t < 300)
    assert history[300] == 1


@pytest.mark.parametrize(("policy", "observation", "pods", "expected"), [
    (KedaWaitingPolicy(target_waiting_per_pod=2.0), in_flight(10.0, running=300.0), 3, 5),  # ceil(10 / 2)
    (HpaRpsPolicy(target_rps_per_pod=3.0), rate(12.0), 2, 4),  # ceil(12 / 3)
    (HpaPolicy(target_in_flight_per_pod=2.0), in_flight(10.0, running=4.0), 3, 7),  # ceil(14 / 2)
])
def test_each_hpa_variant_divides_its_own_metric_by_its_target(policy, observation, pods, expected):
    decision = policy.decide(CONFIG, observation, pool_of(pods), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == expected


@pytest.mark.parametrize(("tolerance", "rps", "expected"), [
    (0.1, 12.9, 4),  # ratio 1.075 on 4 pods at 3 rps/pod: inside ±10 %, keep 4
    (0.1, 10.9, 4),  # ratio 0.91: inside
    (0.05, 12.9, 5),  # outside ±5 %: ceil(4.3)
    (0.1, 13.5, 5),  # ratio 1.125: outside ±10 %
])
def test_hpa_rps_tolerance_keeps_replicas_inside_the_band(tolerance, rps, expected):
    policy = HpaRpsPolicy(target_rps_per_pod=3.0, tolerance=tolerance)
    decision = policy.decide(CONFIG, rate(rps), pool_of(4), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == expected


@pytest.mark.parametrize(("window_s", "first_down_s"), [(0.0, 15), (60.0, 60), (300.0, 300), (600.0, 600)])
def test_the_scale_down_stabilisation_window_sets_when_replicas_fall(window_s, first_down_s):
    # 100 in flight at 10 per pod, then 20 from 15 s on: 10 replicas, then 2 once the window has passed.
    policy = HpaPolicy(target_in_flight_per_pod=10.0, scale_down_stabilization_s=window_s)
    history = replicas_over_time(policy, lambda now_s: in_flight(100.0 if now_s == 0 else 20.0),
                                 replicas=10, until_s=630)
    assert min(t for t, r in history.items() if r < 10) == first_down_s
    assert history[first_down_s] == 2


@pytest.mark.parametrize(("name", "params"), [
    ("hpa", {"tolerance": 1.0}),
    ("hpa", {"tolerance": -0.1}),
    ("keda-waiting", {"scale_down_stabilization_s": -1.0}),
    ("hpa-rps", {"target_rps_per_pod": 0.0}),
    ("kpa", {"stable_window_s": 5.0}),
    ("kpa", {"stable_window_s": 7200.0}),
])
def test_out_of_range_knobs_are_refused(name, params):
    with pytest.raises(ValueError):
        make_policy(name, **params)


def test_every_hpa_variant_reports_its_knobs():
    assert make_policy("keda-waiting", target_waiting_per_pod=2.0).params() == {
        "target_waiting_per_pod": 2.0, "scale_down_stabilization_s": 300.0, "tolerance": 0.1}
    assert make_policy("hpa-rps", scale_down_stabilization_s=60.0).params()["scale_down_stabilization_s"] == 60.0
    assert make_policy("kpa", stable_window_s=30.0).params() == {"target_concurrency": 32.0, "stable_window_s": 30.0}


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


@pytest.mark.parametrize(("window_s", "expected"), [(30.0, 5), (60.0, 7), (120.0, 9)])
def test_kpa_stable_window_sets_how_fast_it_scales_down(window_s, expected):
    # 70 in flight on 10 pods at target 10 (7 per pod) for 2 minutes, then nothing. 20 s later the
    # stable average still holds 70 × (window − 20 s) / window: 23 (→ 4, but at most half the 10 ready
    # pods go per tick: 5), 47 (→ 7) or 58 (→ 9) in flight.
    policy = KpaPolicy(target_concurrency=10.0, stable_window_s=window_s)
    busy = [(float(t), 70.0) for t in range(0, 120, 2)]
    idle = [(float(t), 0.0) for t in range(120, 141, 2)]
    decision = run_kpa(policy, busy + idle, replicas=10)
    assert decision.pools[INTERACTIVE].replicas == expected


@pytest.mark.parametrize(("window_s", "panic_average"), [(60.0, "0.0"), (120.0, "7.0")])
def test_kpa_panic_window_is_a_tenth_of_the_stable_window(window_s, panic_average):
    # 14 in flight, then none for the last 6 s: a 6-s panic window (60-s stable window) averages only
    # the idle samples, a 12-s one (120-s stable window) half busy ones: (14 × 3 + 0 × 3) / 6 = 7.
    policy = KpaPolicy(target_concurrency=10.0, stable_window_s=window_s)
    samples = [(float(t), 14.0) for t in range(0, 120, 2)] + [(float(t), 0.0) for t in (120, 122, 124)]
    decision = run_kpa(policy, samples, replicas=2)
    assert f"panic {panic_average} over" in decision.pools[INTERACTIVE].reason


# --- static and the registry ----------------------------------------------------------------------


def test_static_is_fixed():
    policy = make_policy("static", replicas=7)
    decision = policy.decide(CONFIG, in_flight(1000.0), pool_of(1), {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 7


@pytest.mark.parametrize("name", ["hpa", "keda-waiting", "hpa-rps", "kpa", "static"])
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


@pytest.mark.parametrize(("name", "interval_s"),
                         [("hpa", 15.0), ("keda-waiting", 15.0), ("hpa-rps", 15.0), ("kpa", 2.0), ("leadtime", 5.0)])
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
