"""Run metrics: a dropped request is a request beyond the SLO."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from leadtime.policy.types import INTERACTIVE, Decision, PoolDecision
from leadtime.replica import get_profile
from leadtime.sim.engine import simulate
from leadtime.sim.metrics import compute_metrics
from leadtime.sim.run import make_scenario

PROFILE = get_profile("llama-8b-h100").with_cold_start("30s")


class Fixed:
    name = "fixed"
    interval_s = 15.0

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        return Decision(pools={INTERACTIVE: PoolDecision(4, "fixed")}, memory=memory)


def test_dropped_requests_are_misses_in_both_attainments(tmp_path: pathlib.Path) -> None:
    # 20 short requests per second on four replicas, but a queue of one: every request served meets
    # the SLO at once; the ones dropped at the queue must not make that 100 %.
    path = tmp_path / "burst.csv"
    rows = [f"{i / 20:.3f},100,10" for i in range(20 * 300)]
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    scenario = make_scenario(path, PROFILE, queue_limit=1)
    m = simulate(Fixed(), scenario.arrivals, scenario.config, record_timeline=False).metrics
    assert m.dropped > 0
    assert m.slo_request_attainment == pytest.approx(1 - m.dropped / m.requests)
    assert m.slo_request_attainment < 1.0
    assert m.slo_window_attainment < 1.0
    assert m.requests == pytest.approx(20 * 300)
    assert np.isfinite(m.p95_latency_s)  # the p95 of the requests served


def test_a_drop_fails_the_window_it_arrived_in() -> None:
    arrival = np.arange(0.0, 180.0, 1.0)

    class Cls:
        request_arrival_s = arrival

    class Arr:
        classes = {"interactive": Cls}

    fast = np.full(len(arrival), 0.1)
    m = compute_metrics(arrivals=Arr, per_request={"interactive": (fast, fast)}, cohorts=[], slo_index=0,
                        slo_p95_s=1.0, slo_window_s=60.0, billed_gpu_s={"interactive": 1.0},
                        prices={"interactive": 1.0}, idle_gpu_s=0.0, scale_events=0, dropped=10, requeued=0,
                        dropped_at=[(70.0, 10.0)])
    assert m.window_start_s.tolist() == [0.0, 60.0, 120.0]
    assert m.window_p95_s[1] > 1.0 and m.window_p95_s[0] < 1.0 and m.window_p95_s[2] < 1.0
    assert m.slo_window_attainment == pytest.approx(2 / 3)
    assert m.slo_request_attainment == pytest.approx(180 / 190)
    assert m.p95_latency_s == pytest.approx(0.1)
