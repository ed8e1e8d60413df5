"""Graceful scale-down: a removed replica finishes its requests, bills until it exits, loses none."""

from __future__ import annotations

import pathlib
from dataclasses import replace

import pytest
from leadtime.policy.types import INTERACTIVE, Decision, PoolDecision
from leadtime.replica import get_profile
from leadtime.sim import fluid
from leadtime.sim.engine import EPOCH_S, simulate
from leadtime.sim.run import make_scenario

PROFILE = get_profile("llama-8b-h100").with_cold_start("30s")
SPAN_S = 900


class StepDown:
    """Four replicas, two from `at_s` on; keeps the Ready count each decision saw."""

    name = "step-down"
    interval_s = 1.0

    def __init__(self, at_s: float) -> None:
        self.at_s = at_s
        self.ready_seen: dict[float, tuple[int, int, int]] = {}

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        t = now_s - EPOCH_S
        pool = pools[INTERACTIVE]
        self.ready_seen[t] = (pool.ready_count, pool.starting_count, pool.desired)
        return Decision(pools={INTERACTIVE: PoolDecision(4 if t < self.at_s else 2, "step")}, memory=memory)


def _steady(tmp_path: pathlib.Path, rate_rps: float, inp: int, out: int) -> pathlib.Path:
    path = tmp_path / "steady.csv"
    rows = [f"{(i + 0.5) / rate_rps:.4f},{inp},{out}" for i in range(int(rate_rps * SPAN_S))]
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    return path


def test_a_scale_down_loses_no_request_and_adds_no_latency(tmp_path: pathlib.Path) -> None:
    # Long outputs (~15 s each) at a load two replicas carry: killing running requests at the
    # scale-down restarted them with a made-up arrival, and their TTFTs broke the SLO window.
    scenario = make_scenario(_steady(tmp_path, 4.0, 200, 2000), PROFILE, slo_p95_s=1.0)
    policy = StepDown(300.0)
    config = replace(scenario.config, initial_replicas=4)
    result = simulate(policy, scenario.arrivals, config, record_timeline=False)
    m = result.metrics
    assert m.requeued == 0 and m.dropped == 0
    assert m.requests == pytest.approx(4.0 * SPAN_S)
    # no window, the scale-down's included, has a p95 TTFT beyond what two busy replicas explain
    assert m.window_p95_s.max() < 0.5
    assert m.slo_window_attainment == 1.0
    # the terminating replicas are at once neither Ready, starting nor desired
    assert policy.ready_seen[301.0] == (2, 0, 2)


def test_a_drained_replica_bills_until_its_last_request_finishes(tmp_path: pathlib.Path) -> None:
    scenario = make_scenario(_steady(tmp_path, 4.0, 200, 2000), PROFILE)
    config = replace(scenario.config, initial_replicas=4)
    billed_s = simulate(StepDown(300.0), scenario.arrivals, config, record_timeline=False).metrics.gpu_hours * 3600
    span_s = scenario.arrivals.n_ticks * scenario.arrivals.tick_s
    tail_s = (billed_s - 2 * span_s - 2 * 300.0) / 2  # each victim's billing after the scale-down
    alone_s = fluid.in_service_s(PROFILE, 200, 2000, 1.0)  # the shortest its last request could take
    # 4 rps of ~15-s requests on 4 replicas: about 15 in flight on each victim at 300 s
    busy_s = fluid.in_service_s(PROFILE, 200, 2000, 4.0 * alone_s / 4)
    assert alone_s < tail_s <= busy_s * 1.5
    # with no running work a victim exits at once
    idle = make_scenario(_steady(tmp_path, 0.01, 200, 20), PROFILE)
    billed_idle_s = simulate(StepDown(300.0), idle.arrivals, replace(idle.config, initial_replicas=4),
                             record_timeline=False).metrics.gpu_hours * 3600
    idle_span_s = idle.arrivals.n_ticks * idle.arrivals.tick_s
    assert billed_idle_s == pytest.approx(2 * idle_span_s + 2 * 300.0, abs=30.0)


def test_work_still_running_at_the_grace_deadline_is_requeued(tmp_path: pathlib.Path) -> None:
    scenario = make_scenario(_steady(tmp_path, 4.0, 200, 2000), PROFILE)
    config = replace(scenario.config, initial_replicas=4, termination_grace_s=2.0)
    m = simulate(StepDown(300.0), scenario.arrivals, config, record_timeline=False).metrics
    assert m.requeued > 0
    span_s = scenario.arrivals.n_ticks * scenario.arrivals.tick_s
    # killed at the deadline: billed 2 s past the scale-down, not until the requests would finish
    assert m.gpu_hours * 3600 == pytest.approx(2 * span_s + 2 * 302.0)
    # re-queued, not lost: served again, and counted again with the latency from its first arrival
    assert m.requests == pytest.approx(4.0 * SPAN_S + m.requeued)
