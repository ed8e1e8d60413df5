"""Table-driven tests of each step of leadtime's policy chain."""

from __future__ import annotations

import math
import random

import pytest
from leadtime.policy.batch import batch_replicas_needed, plan_batch
from leadtime.policy.bounds import floor_replicas, minute_of_day_utc, record_windowed_max
from leadtime.policy.capacity import learn_capacity
from leadtime.policy.forecast import update_forecast
from leadtime.policy.lead_time import learn_lead_time, quantile
from leadtime.policy.leadtime import (
    SURPRISE_MEMORY_S,
    check_metrics,
    decide,
    note_surprise,
    stabilization_window_s,
)
from leadtime.policy.sizing import (
    erlang_c_exact,
    erlang_c_halfin_whitt,
    replicas_for_p95,
    tail_wait_probability,
)
from leadtime.policy.types import (
    BATCH,
    BATCH_ONDEMAND,
    INTERACTIVE,
    BatchConfig,
    ClassObservation,
    FloorWindow,
    Observation,
    PolicyConfig,
    PoolState,
    ReadyPod,
)


def pods(*cold_starts_s: float, ready_at_s: float = 100.0) -> tuple[ReadyPod, ...]:
    return tuple(ReadyPod(ready_at_s=ready_at_s + i, cold_start_s=c) for i, c in enumerate(cold_starts_s))


# --- lead time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cold_starts_s", "expected_s", "source"),
    [
        ((), 60.0, "prior"),
        ((30.0, 40.0), 60.0, "prior"),  # too few samples
        ((30.0, 40.0, 50.0), 48.0, "P90 of 3 starts"),
        ((10.0,) * 9 + (100.0,), 19.0, "P90 of 10 starts"),
    ],
)
def test_lead_time_is_p90_of_starts_after_enough_samples(cold_starts_s, expected_s, source):
    lead_time_s, _, got_source = learn_lead_time(PoolState(ready=pods(*cold_starts_s)), None, 60.0)
    assert lead_time_s == pytest.approx(expected_s)
    assert got_source == source


def test_lead_time_counts_each_pod_once():
    pool = PoolState(ready=pods(30.0, 40.0, 50.0))
    _, memory, _ = learn_lead_time(pool, None, 60.0)
    _, memory, _ = learn_lead_time(pool, memory, 60.0)
    assert memory["samples_s"] == [30.0, 40.0, 50.0]
    newer = PoolState(ready=pool.ready + (ReadyPod(ready_at_s=500.0, cold_start_s=90.0),))
    _, memory, _ = learn_lead_time(newer, memory, 60.0)
    assert memory["samples_s"] == [30.0, 40.0, 50.0, 90.0]


def test_lead_time_skips_pods_without_a_measured_start():
    # Pods that were Ready before anyone watched them start report 0 s: no measurement, not a
    # lightning-fast start that would shrink the horizon to one control interval.
    lead_time_s, memory, source = learn_lead_time(PoolState(ready=pods(0.0, 0.0, 0.0, 0.0)), None, 60.0)
    assert (lead_time_s, source) == (60.0, "prior")
    assert memory["samples_s"] == []


def test_lead_time_is_at_least_the_age_of_a_pod_still_starting():
    # The prior says 60 s, but a pod has been starting for 200 s: starts take at least that long.
    pool = PoolState(ready=pods(30.0, 40.0, 50.0), starting_ages_s=(20.0, 200.0))
    lead_time_s, _, source = learn_lead_time(pool, None, 60.0)
    assert lead_time_s == 200.0
    assert "still starting" in source
    young = PoolState(ready=pods(30.0, 40.0, 50.0), starting_ages_s=(20.0,))
    assert learn_lead_time(young, None, 60.0)[0] == pytest.approx(48.0)


def test_lead_time_sample_is_bounded():
    memory = None
    for i in range(80):
        _, memory, _ = learn_lead_time(PoolState(ready=(ReadyPod(float(i), float(i)),)), memory, 60.0)
    assert len(memory["samples_s"]) == 50
    assert memory["samples_s"][-1] == 79.0


def test_quantile_interpolates():
    assert quantile([1, 2, 3, 4, 5], 0.5) == 3
    assert quantile([0, 10], 0.9) == pytest.approx(9.0)


# --- capacity --------------------------------------------------------------------------------------


CAPACITY_CONFIG = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, slo_p95_s=2.0)


def learn_for(observations, ready=4, step_s=5.0):
    """Feed (observation, ...) once per control interval; returns the final estimate."""
    memory, estimate = None, None
    for i, observation in enumerate(observations):
        estimate, memory = learn_capacity(CAPACITY_CONFIG, observation, ready, memory, i * step_s)
    return estimate


def growing_queue(arrival_rps, ticks, running=128.0):
    return [ClassObservation(arrival_rps, 50.0 + 10 * i, running, 5.0) for i in range(ticks)]


@pytest.mark.parametrize(
    ("observations", "expected_rps"),
    [
        # no traffic: prior
        ([ClassObservation(0.0, 0.0, 0.0, None)] * 20, 2.0),
        # healthy, batch 25% full: says nothing about saturation, prior stays
        ([ClassObservation(4.0, 0.0, 32.0, 0.5)] * 20, 2.0),
        # a queue growing at 1.5 rps/replica, but for less than a window: no evidence yet
        (growing_queue(6.0, 12), 2.0),
        # growing for over a window (13 decisions = 60 s): cut by 5 % per decision, not below 1.5
        (growing_queue(6.0, 14), 1.9),
        (growing_queue(6.0, 40), 1.5),
        # p95 over the SLO for a whole window with no queue (prefill contention): cut as well
        ([ClassObservation(6.0, 0.0, 40.0, 3.0)] * 40, 1.5),
        # a long queue that is not growing (draining after new replicas arrived) is no evidence
        ([ClassObservation(6.0, 500.0 - 10 * i, 128.0, 5.0) for i in range(40)], 2.0),
    ],
)
def test_capacity_learning(observations, expected_rps):
    assert learn_for(observations).rps_per_replica == pytest.approx(expected_rps)


def test_capacity_little_law_moves_toward_full_batch_throughput():
    # 4 replicas, 29 of 32 slots busy each (91 %), 8 rps in total, steady for a window: service time
    # 14.5 s, so a full batch completes 32 / 14.5 = 2.21 rps; each decision moves 5 % of the way.
    estimate = learn_for([ClassObservation(8.0, 0.0, 116.0, 1.0)] * 13)  # t = 0 … 60 s: one update
    assert estimate.rps_per_replica == pytest.approx(2.0 + 0.05 * (32 / 14.5 - 2.0))
    assert estimate.source == "learned"


def test_capacity_is_not_extrapolated_from_a_partly_full_batch():
    # 81 % full: a replica slows down as its batch grows, so 32 / service time at this batch would
    # overstate what a full batch completes; the prior stays (p95 at 75 % of the SLO: no slack either).
    estimate = learn_for([ClassObservation(8.0, 0.0, 104.0, 1.5)] * 40)
    assert estimate.rps_per_replica == pytest.approx(2.0)


def test_capacity_evidence_restarts_when_ready_replicas_change():
    memory = None
    for i in range(30):
        ready = 4 if i % 10 else 5  # the pool changes every 50 s: never a steady window
        _, memory = learn_capacity(
            CAPACITY_CONFIG, ClassObservation(8.0, 0.0, 104.0, 1.0), ready, memory, i * 5.0
        )
    assert memory["rps_per_replica"] == 2.0


HEALTHY = ClassObservation(5.0, 0.0, 20.0, 0.3)  # 1.25 rps/replica on 4, p95 at 15 % of the SLO


def cut_then_healthy(healthy_s, healthy=HEALTHY, step_s=60.0):
    """40 decisions of overload (estimate cut to 1.5), then a healthy pool for `healthy_s`."""
    memory = None
    for i in range(40):
        _, memory = learn_capacity(CAPACITY_CONFIG, growing_queue(6.0, 40)[i], 4, memory, i * 5.0)
    assert memory["rps_per_replica"] == pytest.approx(1.5)
    start_s = 40 * 5.0
    estimate = None
    for k in range(int(healthy_s / step_s) + 1):
        estimate, memory = learn_capacity(CAPACITY_CONFIG, healthy, 4, memory, start_s + k * step_s)
    return estimate


def test_capacity_cut_is_kept_while_overloads_are_recent():
    # 5 hours healthy after the cut (1.25 rps/replica, p95 0.3 s): bursts that recur within hours
    # keep their evidence.
    assert cut_then_healthy(5 * 3600).rps_per_replica == pytest.approx(1.5)


def test_capacity_recovers_toward_the_prior_after_a_quiet_spell():
    # The last overload was at 195 s, so the quiet spell ends at 21 795 s; the healthy decisions at
    # 21 800 … 22 400 s then recover for 11 steps of 60 s (time constant 600 s).
    estimate = cut_then_healthy(6 * 3600 + 600)
    assert estimate.rps_per_replica == pytest.approx(2.0 - 0.5 * math.exp(-660 / 600))
    # and never above the prior, however long it stays healthy
    assert cut_then_healthy(30 * 3600).rps_per_replica == pytest.approx(2.0)


@pytest.mark.parametrize(
    "healthy",
    [
        ClassObservation(5.0, 0.0, 20.0, 1.5),  # p95 at 75 % of the SLO: not clearly healthy
        ClassObservation(2.0, 0.0, 8.0, 0.3),  # 0.5 rps/replica: too idle to say anything at 1.5
    ],
)
def test_capacity_does_not_recover_without_evidence(healthy):
    assert cut_then_healthy(8 * 3600, healthy).rps_per_replica == pytest.approx(1.5)


SLACK = ClassObservation(6.0, 0.0, 24.0, 0.4)  # 1.5 rps/replica on 4 (75 % of the prior), p95 at 20 %


def learn_each_minute(observations, memory=None, start_s=0.0):
    estimate = None
    for k, observation in enumerate(observations):
        estimate, memory = learn_capacity(CAPACITY_CONFIG, observation, 4, memory, start_s + 60.0 * k)
    return estimate, memory


def test_capacity_grows_on_slack_while_the_pool_carries_most_of_it():
    # Steady from the second decision on, each minute grows the estimate by e^(60/1800); it stops once
    # 1.5 rps/replica is under 70 % of the estimate (above 2.14): 2.0 → 2.07 → 2.14 → 2.21, then holds.
    estimate, _ = learn_each_minute([SLACK] * 2)
    assert estimate.rps_per_replica == pytest.approx(2.0 * math.exp(60 / 1800))
    assert estimate.source == "learned"
    estimate, _ = learn_each_minute([SLACK] * 120)
    assert estimate.rps_per_replica == pytest.approx(2.0 * math.exp(3 * 60 / 1800))


def test_capacity_growth_after_a_gap_counts_one_window():
    # The operator was down for two hours between two decisions that both saw slack.
    _, memory = learn_each_minute([SLACK] * 2)
    estimate, _ = learn_each_minute([SLACK], memory, start_s=60.0 + 7200.0)
    assert estimate.rps_per_replica == pytest.approx(2.0 * math.exp(2 * 60 / 1800))


@pytest.mark.parametrize(
    "observation",
    [
        ClassObservation(6.0, 0.0, 24.0, 1.2),  # p95 at 60 % of the SLO: not enough slack
        ClassObservation(4.0, 0.0, 16.0, 0.4),  # 1 rps/replica, half the estimate: says nothing
        ClassObservation(6.0, 0.0, 24.0, None),  # no latency data
    ],
)
def test_capacity_does_not_grow_without_slack(observation):
    estimate, _ = learn_each_minute([observation] * 60)
    assert estimate.rps_per_replica == pytest.approx(2.0)


def test_capacity_growth_ends_at_the_first_window_over_the_slo_and_waits_an_hour():
    _, memory = learn_each_minute([SLACK] * 10)
    assert memory["rps_per_replica"] > 2.2
    # one window over the SLO (a burst shorter than a window: no steady state): back to the prior
    breach = ClassObservation(6.0, 0.0, 24.0, 2.5)
    estimate, memory = learn_each_minute([breach], memory, start_s=600.0)
    assert estimate.rps_per_replica == pytest.approx(2.0)
    # slack again for 59 minutes: no growth yet; the hour after the breach, growth resumes
    estimate, memory = learn_each_minute([SLACK] * 59, memory, start_s=660.0)
    assert estimate.rps_per_replica == pytest.approx(2.0)
    estimate, _ = learn_each_minute([SLACK], memory, start_s=600.0 + 3600.0)
    assert estimate.rps_per_replica == pytest.approx(2.0 * math.exp(60 / 1800))


def test_capacity_never_below_a_third_of_prior():
    assert learn_for(growing_queue(0.4, 300)).rps_per_replica == pytest.approx(2.0 / 3.0)


# --- forecast --------------------------------------------------------------------------------------


def run_forecast(rates_rps, horizon_s=120.0, step_s=5.0, unit_rps=1.0):
    memory, forecast = None, None
    for i, rate in enumerate(rates_rps):
        forecast, memory = update_forecast(memory, rate, horizon_s, i * step_s, unit_rps=unit_rps)
    return forecast


def test_forecast_of_constant_demand_is_that_demand():
    forecast = run_forecast([10.0] * 100)
    assert forecast.level_rps == pytest.approx(10.0)
    assert forecast.at_horizon_rps == pytest.approx(10.0)


def test_forecast_extrapolates_a_ramp():
    # +0.05 rps/s for 10 minutes: in 120 s demand will be ~6 rps higher; the damped trend extrapolates
    # 60 s × (1 − e^-2) ≈ 52 s of it (~2.6 rps), the forecast-error margin covers the rest
    forecast = run_forecast([0.05 * 5 * i for i in range(120)])
    assert forecast.trend_rps_per_s == pytest.approx(0.05, rel=0.15)
    assert forecast.at_horizon_rps == pytest.approx(forecast.level_rps + 0.05 * 52, rel=0.05)
    assert forecast.at_horizon_rps > forecast.level_rps + 2.0


def test_forecast_of_falling_demand_peaks_at_the_current_level():
    forecast = run_forecast([60.0 - 0.05 * 5 * i for i in range(120)])
    assert forecast.at_horizon_rps < forecast.level_rps
    assert forecast.peak_rps == forecast.level_rps


def test_forecast_growth_is_bounded():
    forecast = run_forecast([1.0] * 50 + [200.0] * 3, horizon_s=600.0)
    assert forecast.at_horizon_rps <= 3.0 * max(forecast.level_rps, 1.0) + 1e-9


def test_under_forecast_ratio_grows_on_surprises_and_not_on_smooth_demand():
    smooth = run_forecast([10.0] * 200)
    bursty = run_forecast([10.0, 10.0, 10.0, 30.0] * 50)
    assert smooth.under_forecast_ratio == pytest.approx(0.0)
    assert bursty.under_forecast_ratio > 0.05


def test_margin_follows_the_forecast_error_distribution():
    # Smooth demand earns no margin; demand that jumps between 10 and 30 rps earns enough to cover
    # most of the jump (the 95th percentile of the error), capped at the forecast itself.
    smooth = run_forecast([10.0] * 200)
    bursty = run_forecast([10.0, 10.0, 10.0, 30.0] * 50)
    assert smooth.margin_rps < 0.01 * smooth.peak_rps
    assert 5.0 < bursty.margin_rps <= bursty.peak_rps


def test_margin_is_the_largest_until_a_forecast_is_checked_then_hands_over_quickly():
    # Nothing checked yet: the error is unknown and the margin is the cap (the forecast itself).
    young = run_forecast([10.0] * 3)
    assert young.resolved == 0
    assert young.margin_rps == pytest.approx(young.peak_rps)
    # Steady demand, horizon 120 s: the first check lands at 125 s and halves the margin; a few
    # more checks and it is a small share, long before ten checks.
    first_check = run_forecast([10.0] * 25)
    assert first_check.resolved == 1
    assert first_check.margin_rps == pytest.approx(0.5 * first_check.peak_rps, rel=0.05)
    few_checks = run_forecast([10.0] * 30)
    assert few_checks.resolved < 10
    assert few_checks.margin_rps < 0.2 * few_checks.peak_rps


@pytest.mark.parametrize("unit_rps", [1.0, 9.0])
def test_margin_shrinks_relatively_as_demand_grows(unit_rps):
    # Poisson-like swings (±√demand) at 1×, 4× and 16× the demand: the margin is what the errors
    # measure, so its share of demand halves every time demand quadruples.
    for history in (240, 480):
        shares = []
        for base_rps in (10.0, 40.0, 160.0):
            swing_rps = math.sqrt(base_rps * unit_rps)
            rates_rps = [base_rps, base_rps, base_rps + swing_rps, base_rps - swing_rps] * (history // 4 + 1)
            forecast = run_forecast(rates_rps[:history], unit_rps=unit_rps)
            shares.append(forecast.margin_rps / forecast.peak_rps)
        assert shares[0] > shares[1] > shares[2] > 0.0
        assert shares[1] == pytest.approx(shares[0] / 2, rel=0.25)
        assert shares[2] == pytest.approx(shares[1] / 2, rel=0.25)


# --- sizing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "load", "expected"),
    [(1, 0.5, 0.5), (2, 1.0, 1.0 / 3.0), (10, 0.0, 0.0), (3, 3.0, 1.0)],
)
def test_erlang_c_exact(servers, load, expected):
    assert erlang_c_exact(servers, load) == pytest.approx(expected)


def test_halfin_whitt_is_close_to_exact_for_many_servers():
    for servers, load in ((200, 180.0), (256, 240.0), (100, 80.0)):
        assert erlang_c_halfin_whitt(servers, load) == pytest.approx(erlang_c_exact(servers, load), abs=0.05)


@pytest.mark.parametrize(
    ("arrival_rps", "expected"),
    [(0.0, 0), (1.0, 1), (10.0, 6), (40.0, 21), (100.0, 51)],
)
def test_replicas_for_p95(arrival_rps, expected):
    config = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, slo_p95_s=2.0)
    assert replicas_for_p95(arrival_rps, 2.0, config, limit=100) == expected


def test_sized_pool_meets_the_tail_and_one_fewer_does_not():
    config = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, slo_p95_s=2.0)
    replicas = replicas_for_p95(40.0, 2.0, config, limit=100)
    assert tail_wait_probability(replicas, 40.0, 2.0, 32, 1.0) <= 0.05
    assert tail_wait_probability(replicas - 1, 40.0, 2.0, 32, 1.0) > 0.05


def test_sizing_respects_limit():
    assert replicas_for_p95(1000.0, 2.0, PolicyConfig(), limit=20) == 20


# --- floors and bounds -----------------------------------------------------------------------------


NIGHT = FloorWindow(start_minute=22 * 60, end_minute=2 * 60, replicas=3)
DAY = FloorWindow(start_minute=9 * 60, end_minute=17 * 60, replicas=6)


@pytest.mark.parametrize(
    ("hour", "expected"),
    [(3, 1), (9, 6), (16, 6), (17, 1), (23, 3), (1, 3), (2, 1)],
)
def test_time_of_day_floors(hour, expected):
    config = PolicyConfig(warm_floor=1, floors=(NIGHT, DAY))
    floor, _ = floor_replicas(config, hour * 3600.0 + 30 * 86_400)
    assert floor == expected


def test_minute_of_day():
    assert minute_of_day_utc(86_400 * 7 + 3661) == 61


def test_windowed_max_keeps_the_window_maximum():
    history: list = []
    values = [(0, 5), (10, 3), (20, 4), (400, 2)]
    maxima = []
    for at_s, value in values:
        history, window_max = record_windowed_max(history, at_s, value, 300.0)
        maxima.append(window_max)
    assert maxima == [5, 5, 5, 2]
    assert len(history) == 1


# --- metrics freshness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observation", "fresh"),
    [
        (Observation(at_s=0, interactive=ClassObservation(1.0, 0, 0, 0.1)), True),
        (Observation(at_s=0, interactive=ClassObservation(1.0, 0, 0, 0.1), available=False), False),
        (Observation(at_s=0, interactive=ClassObservation(1.0, 0, 0, 0.1), stale_s=300.0), False),
        (Observation(at_s=0, interactive=ClassObservation(None, 0, 0, 0.1)), False),
    ],
)
def test_check_metrics(observation, fresh):
    assert (check_metrics(observation, PolicyConfig()) is None) == fresh


# --- batch -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "running", "arrival_rps", "expected"),
    [
        (0.0, 0.0, 0.0, 0),  # nothing to do: zero replicas
        (0.0, 0.0, 3.0, 2),  # 3 rps at 2 rps/replica
        (7000.0, 200.0, 0.0, 2),  # 7200 requests within 3600 − 60 s = 2.03 rps
        (100_000.0, 0.0, 0.0, 10),  # capped at max_replicas
    ],
)
def test_batch_sizing_against_deadline(queue, running, arrival_rps, expected):
    batch = BatchConfig(enabled=True, deadline_s=3600.0, max_replicas=10)
    needed, _, _ = batch_replicas_needed(
        batch, ClassObservation(arrival_rps, queue, running, None), 2.0, 60.0
    )
    assert needed == expected


SPOT_BATCH = BatchConfig(
    enabled=True, deadline_s=600.0, max_replicas=10, fallback_after_pending_s=120.0, fallback_max_replicas=2
)
BACKLOG = ClassObservation(0.0, 3000.0, 0.0, None)  # needs ceil(3000 / 540 / 2) = 3 replicas


def test_batch_falls_back_to_ondemand_when_spot_is_stuck():
    spot = PoolState(desired=3, pending_ages_s=(200.0, 200.0, 200.0))
    plan = plan_batch(SPOT_BATCH, BACKLOG, spot, 2.0, 60.0, None, 1000.0)
    assert plan.spot.replicas == 3
    assert plan.ondemand.replicas == 2
    assert "pending" in plan.ondemand.reason


def test_batch_waits_before_falling_back():
    spot = PoolState(desired=3, pending_ages_s=(30.0, 30.0, 30.0))
    plan = plan_batch(SPOT_BATCH, BACKLOG, spot, 2.0, 60.0, None, 1000.0)
    assert plan.ondemand.replicas == 0


def test_batch_returns_to_spot_as_spot_becomes_ready():
    memory = {"ondemand_replicas": 2, "recommendations": []}
    half_back = PoolState(desired=3, ready=pods(30.0, 30.0), starting_ages_s=(10.0,))
    plan = plan_batch(SPOT_BATCH, BACKLOG, half_back, 2.0, 60.0, memory, 1000.0)
    assert plan.ondemand.replicas == 1
    all_back = PoolState(desired=3, ready=pods(30.0, 30.0, 30.0))
    plan = plan_batch(SPOT_BATCH, BACKLOG, all_back, 2.0, 60.0, plan.memory, 1005.0)
    assert plan.ondemand.replicas == 0
    assert "spot is back" in plan.ondemand.reason


# --- decide() as a whole ---------------------------------------------------------------------------


def observe(arrival_rps, queue=0.0, running=0.0, p95_s=0.5, **kwargs):
    return Observation(at_s=0.0, interactive=ClassObservation(arrival_rps, queue, running, p95_s), **kwargs)


def test_unavailable_metrics_hold_replicas():
    decision = decide(
        PolicyConfig(), observe(5.0, available=False), {INTERACTIVE: PoolState(desired=4)}, {}, 0.0
    )
    assert decision.held
    assert decision.pools[INTERACTIVE].replicas == 4
    assert "metrics unavailable" in decision.pools[INTERACTIVE].reason


def test_unavailable_metrics_still_raise_a_pool_at_zero_to_its_floor():
    config = PolicyConfig(warm_floor=2)
    decision = decide(config, observe(5.0, stale_s=600.0), {INTERACTIVE: PoolState(desired=0)}, {}, 0.0)
    assert decision.held
    assert decision.pools[INTERACTIVE].replicas == 2
    assert "old" in decision.pools[INTERACTIVE].reason


def settled(rate_rps: float) -> dict:
    """Memory of a forecaster that has tracked `rate_rps` for a while without error (no margin)."""
    return {
        "forecast": {
            "level_rps": rate_rps, "trend_rps_per_s": 0.0, "at_s": 0.0, "pending": [],
            "resolved": 30, "checked": 1000, "error_mean_rps": 0.0, "error_square_rps2": 0.0,
        }
    }


def test_a_new_forecaster_pads_demand_by_its_largest_margin():
    # No forecast has been checked yet: its error is unknown, so demand is doubled (the cap), and the
    # same traffic with a forecaster that has been right for a while gets no margin.
    config = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, max_replicas=100)
    fresh = decide(config, observe(20.0), {INTERACTIVE: PoolState(desired=1)}, {}, 0.0)
    trusted = decide(config, observe(20.0), {INTERACTIVE: PoolState(desired=1)}, settled(20.0), 0.0)
    assert fresh.forecast_rps == pytest.approx(40.0)
    assert trusted.forecast_rps == pytest.approx(20.0, rel=0.01)
    assert fresh.pools[INTERACTIVE].replicas > trusted.pools[INTERACTIVE].replicas


def test_reason_names_forecast_horizon_and_model():
    config = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, cold_start_prior_s=115.0)
    decision = decide(config, observe(38.2), {INTERACTIVE: PoolState(desired=1)}, settled(38.2), 0.0)
    reason = decision.pools[INTERACTIVE].reason
    assert reason.startswith("forecast 38.2 rps in 120 s needs ")
    assert "(p95 model" in reason
    assert decision.pools[INTERACTIVE].replicas == 20


def test_target_is_capped_at_max_replicas():
    config = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, max_replicas=10)
    decision = decide(config, observe(38.2), {INTERACTIVE: PoolState(desired=1)}, {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 10
    assert "capped at max 10" in decision.pools[INTERACTIVE].reason


def test_starting_replicas_count_as_capacity_no_cascade():
    """A breach while replicas are starting adds nothing: the starting ones are already coming."""
    config = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, max_replicas=50)
    pool = PoolState(desired=10, ready=pods(*[60.0] * 2), starting_ages_s=(10.0,) * 8)
    memory: dict = settled(15.0)
    replicas = []
    for tick in range(12):
        decision = decide(
            config,
            observe(15.0, queue=400.0, running=64.0, p95_s=30.0),
            {INTERACTIVE: pool},
            memory,
            tick * 5.0,
        )
        memory = decision.memory
        replicas.append(decision.pools[INTERACTIVE].replicas)
    # sized once for 15 rps plus the backlog (12 replicas), not doubled tick after tick
    assert replicas == [12] * 12


def test_reactive_correction_adds_one_when_slo_breaks_with_nothing_starting():
    config = PolicyConfig(replica_capacity_rps=10.0, max_concurrency=32, max_replicas=50)
    pool = PoolState(desired=4, ready=pods(*[60.0] * 4))
    decision = decide(
        config, observe(20.0, queue=100.0, running=128.0, p95_s=9.0), {INTERACTIVE: pool}, settled(20.0), 0.0
    )
    assert decision.pools[INTERACTIVE].replicas == 5
    assert "reactive correction" in decision.pools[INTERACTIVE].reason


@pytest.mark.parametrize(
    ("cost_aware", "p95_s", "window_s", "note"),
    [
        (False, 0.5, 300.0, ""),  # the configured window, as HPA's
        (True, 0.5, 120.0, "break-even"),  # SLO met: ski rental, 2 x the 60 s lead time
        (True, 2.5, 300.0, ""),  # the SLO broke: the full window
    ],
)
def test_scale_down_waits_for_stabilisation_then_steps_gently(cost_aware, p95_s, window_s, note):
    config = PolicyConfig(
        replica_capacity_rps=2.0, max_concurrency=32, scale_down_stabilization_s=300.0, max_replicas=40,
        scale_down_cost_aware=cost_aware,
    )
    pool = PoolState(desired=30, ready=pods(*[60.0] * 30))
    memory: dict = {}
    history, reasons = [], []
    for tick in range(0, 400, 5):
        observation = observe(2.0, p95_s=p95_s if tick == 0 else 0.5)  # a breach at most at the start
        decision = decide(config, observation, {INTERACTIVE: pool}, memory, float(tick))
        memory = decision.memory
        replicas = decision.pools[INTERACTIVE].replicas
        history.append(replicas)
        reasons.append(decision.pools[INTERACTIVE].reason)
        pool = PoolState(desired=replicas, ready=pods(*[60.0] * replicas))
    first_drop = next(i for i, r in enumerate(history) if r < 30)
    assert window_s - 5 <= first_drop * 5 <= window_s + 5
    assert f"stable for {window_s:.0f} s" in reasons[first_drop]
    assert note in reasons[first_drop]
    steps = [a - b for a, b in zip(history, history[1:], strict=False)]
    assert max(steps) <= 3  # at most 10 % of 30 per decision


@pytest.mark.parametrize(
    ("p95_s", "target", "last_down_s", "expected"),
    [
        (0.5, 10, None, None),  # nothing happened
        (2.5, 10, None, 1000.0),  # p95 over the 2 s SLO
        (0.5, 11, 800.0, 1000.0),  # a replica asked back 200 s after a scale-down (window 300 s)
        (0.5, 11, 600.0, None),  # asked back after the configured window: demand really grew
        (0.5, 10, 800.0, None),  # no scale-up
    ],
)
def test_surprises_that_restore_the_configured_window(p95_s, target, last_down_s, expected):
    config = PolicyConfig(slo_p95_s=2.0, scale_down_stabilization_s=300.0)
    memory = {} if last_down_s is None else {"last_down_s": last_down_s}
    assert note_surprise(config, observe(5.0, p95_s=p95_s), PoolState(desired=10), target, memory, 1000.0) == expected


@pytest.mark.parametrize(
    ("configured_s", "lead_time_s", "last_breach_s", "expected_s"),
    [
        (300.0, 30.0, None, 60.0),  # 2 x 30 s
        (300.0, 10.0, None, 60.0),  # never under one metrics window
        (300.0, 600.0, None, 300.0),  # the configured window is the most it waits
        (300.0, 30.0, 3000.0, 300.0),  # a breach 10 minutes ago: the full window
        (300.0, 30.0, 0.0, 60.0),  # a breach over an hour ago is forgotten
    ],
)
def test_stabilisation_window(configured_s, lead_time_s, last_breach_s, expected_s):
    config = PolicyConfig(scale_down_stabilization_s=configured_s)
    assert stabilization_window_s(config, lead_time_s, last_breach_s, 3600.0)[0] == expected_s
    no_ski_rental = PolicyConfig(scale_down_stabilization_s=configured_s, scale_down_cost_aware=False)
    assert stabilization_window_s(no_ski_rental, lead_time_s, last_breach_s, 3600.0)[0] == configured_s


def test_no_scale_down_while_forecast_exceeds_ready_capacity():
    config = PolicyConfig(replica_capacity_rps=2.0, max_concurrency=32, scale_down_stabilization_s=0.0)
    # 10 desired but only 3 ready; demand 6 rps (12 with a new forecaster's margin) needs 7: desired
    # must not drop below 10 while the forecast exceeds what the 3 ready replicas serve.
    pool = PoolState(desired=10, ready=pods(60.0, 60.0, 60.0), starting_ages_s=(5.0,) * 7)
    decision = decide(config, observe(6.0), {INTERACTIVE: pool}, {}, 0.0)
    assert decision.pools[INTERACTIVE].replicas == 10
    assert "exceeds ready capacity" in decision.pools[INTERACTIVE].reason


def test_batch_pools_are_decided_when_enabled():
    config = PolicyConfig(batch=BatchConfig(enabled=True))
    observation = Observation(
        at_s=0.0,
        interactive=ClassObservation(1.0, 0.0, 0.0, 0.1),
        batch=ClassObservation(0.0, 0.0, 0.0, None),
    )
    decision = decide(config, observation, {}, {}, 0.0)
    assert decision.pools[BATCH].replicas == 0
    assert decision.pools[BATCH_ONDEMAND].replicas == 0
    assert math.isfinite(decision.lead_time_s)


# --- steady load: no flapping -----------------------------------------------------------------------


def run_steady_load(rates_rps, config, start_replicas, step_s=2.0):
    """Decisions every `step_s` on a pool whose replicas are Ready as soon as they are asked for."""
    memory, replicas, history = {}, start_replicas, []
    for i, rate_rps in enumerate(rates_rps):
        now_s = i * step_s
        pods = tuple(ReadyPod(ready_at_s=0.0, cold_start_s=0.0) for _ in range(replicas))
        pool = PoolState(desired=replicas, ready=pods)
        decision = decide(config, observe(rate_rps), {INTERACTIVE: pool}, memory, now_s)
        memory, replicas = decision.memory, decision.pools[INTERACTIVE].replicas
        history.append((now_s, replicas))
    return history


@pytest.mark.parametrize(
    ("mean_rps", "noise_sd_rps", "start_replicas"),
    [
        (8.5, 0.6, 10),  # the live drop run: 10 replicas, load steady a little under them
        (9.0, 1.0, 10),
        (20.0, 1.5, 15),
        (95.0, 3.0, 60),
        (30.0, 0.0, 40),  # perfectly steady, far too many replicas
    ],
)
@pytest.mark.parametrize("cost_aware", [False, True])
def test_steady_load_does_not_flap(mean_rps, noise_sd_rps, start_replicas, cost_aware):
    config = PolicyConfig(replica_capacity_rps=1.0, max_concurrency=32, max_replicas=200,
                          cold_start_prior_s=30.0, control_interval_s=2.0, scale_down_cost_aware=cost_aware)
    noise = random.Random(7)
    rates_rps = [max(mean_rps + noise.gauss(0.0, noise_sd_rps), 0.0) for _ in range(3600)]  # two hours
    history = run_steady_load(rates_rps, config, start_replicas)
    last_down_s, asked_back_s = None, []
    for (_, before), (now_s, after) in zip(history, history[1:], strict=False):
        if after < before:
            last_down_s = now_s
        elif after > before and last_down_s is not None and now_s - last_down_s <= config.scale_down_stabilization_s:
            asked_back_s.append(now_s)
    if not cost_aware:
        # the configured window, HPA-style: nothing removed is asked back within it
        assert not asked_back_s, history
    else:
        # the ski-rental window is tried, and the first replica asked back restores the configured
        # window for an hour: at most a couple of such events per hour, close together
        assert len(asked_back_s) <= 2 * math.ceil(history[-1][0] / SURPRISE_MEMORY_S), asked_back_s
        for a, b in zip(asked_back_s, asked_back_s[1:], strict=False):
            assert b - a <= config.scale_down_stabilization_s or b - a >= SURPRISE_MEMORY_S, asked_back_s
    # and it settles near what the load needs (plus its noise), whichever side it started on
    assert history[-1][1] <= math.ceil(1.1 * (mean_rps + 3 * noise_sd_rps)) + 1
