"""The Prometheus view: what the policy (and every baseline) reads is what the default queries return."""

from __future__ import annotations

import pathlib
from dataclasses import replace

import numpy as np
import pytest
from leadtime.policy import make_policy
from leadtime.policy.types import INTERACTIVE, Decision, PoolDecision
from leadtime.replica import get_profile
from leadtime.sim.engine import EPOCH_S, simulate
from leadtime.sim.prometheus import LATENCY_BUCKETS_S, PrometheusView, extrapolated_rate, scrape_times
from leadtime.sim.run import make_scenario

PROFILE = get_profile("llama-8b-h100").with_cold_start("30s")


def test_rate_extrapolates_to_the_range_edges_like_prometheus() -> None:
    # 10/s for 45 s between the first and last sample of (0, 60]: both edges lie within 1.1 sample
    # spacings, so the increase is extrapolated to the whole minute: exactly 10/s.
    times = [8.0, 23.0, 38.0, 53.0]
    assert extrapolated_rate(times, [1000 + 10 * t for t in times], 0.0, 60.0, 60.0) == pytest.approx(10.0)
    # A counter that starts at 0 in the first sample is not extrapolated to below zero.
    assert extrapolated_rate(times, [10 * (t - 8) for t in times], 0.0, 60.0, 60.0) == pytest.approx(450 * 52 / 45 / 60)
    # An edge farther than 1.1 spacings (30 s to the start) extrapolates by half a spacing only; the
    # end, 15 s away, by all of it.
    assert extrapolated_rate([30.0, 45.0], [100.0, 250.0], 0.0, 60.0, 60.0) == pytest.approx(150 * 37.5 / 15 / 60)
    assert extrapolated_rate([53.0], [100.0], 0.0, 60.0, 60.0) is None


def test_scrapes_fall_half_an_interval_after_each_interval() -> None:
    assert scrape_times(60.0, 1.0, 15.0, 7.5).tolist() == [8.0, 23.0, 38.0, 53.0]
    assert scrape_times(60.0, 5.0, 15.0, 7.5).tolist() == [10.0, 25.0, 40.0, 55.0]


def test_a_latency_counts_when_its_event_happens_not_at_admission() -> None:
    view = PrometheusView(scrape_times(600.0, 1.0, 15.0, 7.5), 60.0)
    view.observe(50.0, 5, 10.0)  # happens at 50 s: the scrape at 53 s sees it
    for t in (8.0, 23.0, 38.0):
        view.scrape(t, 0.0, 0.0, 0.0)
    assert view.query(40.0)[0].p95_latency_s is None
    view.scrape(53.0, 0.0, 0.0, 0.0)
    p95 = view.query(54.0)[0].p95_latency_s
    lower, upper = LATENCY_BUCKETS_S[4], LATENCY_BUCKETS_S[5]
    assert p95 == pytest.approx(lower + 0.95 * (upper - lower))  # histogram_quantile's interpolation


class Recording:
    """`replicas` interactive replicas (or a wrapped policy's decision); keeps every observation."""

    interval_s = 1.0

    def __init__(self, replicas: int = 0, inner=None) -> None:  # noqa: ANN001
        self.replicas, self.inner = replicas, inner
        self.name = inner.name if inner is not None else "fixed"
        if inner is not None:
            self.interval_s = inner.interval_s
        self.seen: list[tuple[float, object]] = []

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        self.seen.append((now_s - EPOCH_S, observation))
        if self.inner is not None:
            return self.inner.decide(config, observation, pools, memory, now_s)
        return Decision(pools={INTERACTIVE: PoolDecision(self.replicas, "fixed")}, memory=memory)


def _trace(tmp_path: pathlib.Path, phases: list[tuple[float, float]], inp: int = 200, out: int = 20) -> pathlib.Path:
    """A request trace of (rate_rps, duration_s) phases, evenly spaced requests."""
    rows, t0 = [], 0.0
    for rate, duration in phases:
        n = int(rate * duration)
        rows += [f"{t0 + (i + 0.5) / rate:.4f},{inp},{out}" for i in range(n)]
        t0 += duration
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    return path


def test_a_step_in_arrivals_reaches_the_policy_only_through_scrapes(tmp_path: pathlib.Path) -> None:
    scenario = make_scenario(_trace(tmp_path, [(5.0, 600.0), (20.0, 600.0)]), PROFILE)
    policy = Recording(8)
    simulate(policy, scenario.arrivals, scenario.config, record_timeline=False)
    seen = dict(policy.seen)
    # No scrape has seen the step until 608 s: the rate still reads the old 5 rps.
    for t in range(600, 608):
        assert seen[float(t)].interactive.arrival_rate_rps == pytest.approx(5.0, rel=0.05)
        assert 0.0 <= seen[float(t)].stale_s < 15.0
    assert seen[608.0].interactive.arrival_rate_rps > 5.5
    # a full window after the step's first scrape, the new rate
    assert seen[700.0].interactive.arrival_rate_rps == pytest.approx(20.0, rel=0.05)
    # the newest sample is never older than one scrape interval
    assert max(o.stale_s for _, o in policy.seen) < 15.0
    assert max(o.stale_s for _, o in policy.seen) >= 14.0


def test_while_a_queue_builds_the_rate_is_the_completion_rate(tmp_path: pathlib.Path) -> None:
    # One replica and three times the work it can do: the default query counts completions, which
    # stay at the replica's throughput however fast requests arrive; the queue gauge grows.
    inp, out = 2000, 200
    capacity = PROFILE.throughput_rps(inp, out)
    path = _trace(tmp_path, [(3 * capacity, 900.0)], inp, out)
    scenario = make_scenario(path, PROFILE)
    policy = Recording(1)
    result = simulate(policy, scenario.arrivals, replace(scenario.config, initial_replicas=1), record_timeline=False)
    late = [o for t, o in policy.seen if t >= 300]
    rates = np.array([o.interactive.arrival_rate_rps for o in late])
    assert rates.max() < 1.2 * capacity  # never the arrival rate (3x)
    assert rates.mean() == pytest.approx(capacity, rel=0.15)
    queues = [o.interactive.queue_depth for o in late]
    assert queues[-1] > queues[0] > 0
    assert result.metrics.slo_window_attainment < 0.5


def test_a_baseline_gets_the_same_lagged_view(tmp_path: pathlib.Path) -> None:
    # HPA capped at one replica on three times its work: it, too, reads completions, not arrivals.
    inp, out = 2000, 200
    capacity = PROFILE.throughput_rps(inp, out)
    scenario = make_scenario(_trace(tmp_path, [(3 * capacity, 600.0)], inp, out), PROFILE, max_replicas=1)
    hpa = Recording(inner=make_policy("hpa"))
    fixed = Recording(1)
    config = replace(scenario.config, initial_replicas=1)
    simulate(hpa, scenario.arrivals, config, record_timeline=False)
    simulate(fixed, scenario.arrivals, config, record_timeline=False)
    # both runs hold one replica, so at the same instants they must see the very same observation
    fixed_seen = dict(fixed.seen)
    common = [(t, o) for t, o in hpa.seen if t in fixed_seen]
    assert len(common) > 30
    assert all(o == fixed_seen[t] for t, o in common)
    assert max(o.interactive.arrival_rate_rps for t, o in common if t >= 300) < 1.2 * capacity
    assert any(o.stale_s > 0 for _, o in common)


def test_p95_is_read_from_the_histogram_buckets_over_the_window(tmp_path: pathlib.Path) -> None:
    # Equal requests, no queue: every TTFT falls in one bucket; histogram_quantile interpolates 95 %
    # of the way through it, whatever the exact latency.
    scenario = make_scenario(_trace(tmp_path, [(2.0, 600.0)], 2000, 10), PROFILE)
    policy = Recording(4)
    simulate(policy, scenario.arrivals, scenario.config, record_timeline=False)
    ttft, _ = PROFILE.latency_at(2000.0, 10.0, 1.0)
    index = int(np.searchsorted(LATENCY_BUCKETS_S, ttft))
    lower, upper = LATENCY_BUCKETS_S[index - 1], LATENCY_BUCKETS_S[index]
    p95s = {round(o.interactive.p95_latency_s, 6) for t, o in policy.seen if t >= 120}
    assert p95s == {round(lower + 0.95 * (upper - lower), 6)}


def test_an_e2e_latency_is_seen_only_after_the_request_completes(tmp_path: pathlib.Path) -> None:
    # Long outputs: the first completion comes ~e2e after the first arrival; until a scrape after
    # it, Prometheus has no e2e observation and the p95 is unknown.
    scenario = make_scenario(_trace(tmp_path, [(1.0, 300.0)], 200, 2000), PROFILE, slo_metric="e2e", slo_p95_s=60)
    policy = Recording(4)
    simulate(policy, scenario.arrivals, replace(scenario.config, initial_replicas=4), record_timeline=False)
    _, e2e = PROFILE.latency_at(200.0, 2000.0, 1.0)
    assert e2e > 10.0
    before = [o.interactive.p95_latency_s for t, o in policy.seen if t < e2e]
    assert before and all(p is None for p in before)
    assert all(o.interactive.p95_latency_s is not None for t, o in policy.seen if t >= e2e + 16)
