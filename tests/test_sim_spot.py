"""Spot preemption of the batch pool: a notice, a drain, the rest re-queued, none lost; its bill."""

from __future__ import annotations

import pathlib
from dataclasses import replace

import pytest
from leadtime.policy.types import BATCH, INTERACTIVE, Decision, PoolDecision
from leadtime.replica import get_profile
from leadtime.sim.engine import simulate
from leadtime.sim.lifecycle import SpotTrace, load_spot_trace, synthesize_spot_trace
from leadtime.sim.run import make_scenario

PROFILE = get_profile("llama-8b-h100").with_cold_start("30s")
SPOT = pathlib.Path(__file__).parent / "data" / "spot-small.json"
SPAN_S = 900


class Fixed:
    name = "fixed"
    interval_s = 5.0

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        return Decision(pools={INTERACTIVE: PoolDecision(1, "fixed"), BATCH: PoolDecision(3, "fixed")},
                        memory=memory)


def _scenario(tmp_path: pathlib.Path, out: int):  # noqa: ANN202
    path = tmp_path / "batch.csv"
    rows = [f"{i + 0.5},200,{out},batch" for i in range(SPAN_S)]
    rows += [f"{i + 0.25},200,20,interactive" for i in range(SPAN_S)]
    path.write_text("arrival_s,input_tokens,output_tokens,class\n" + "\n".join(sorted(rows)) + "\n")
    scenario = make_scenario(path, PROFILE)
    return scenario, replace(scenario.config, spot_trace=load_spot_trace(SPOT))


def test_the_shipped_spot_file_loads_and_repeats() -> None:
    trace = load_spot_trace(SPOT)
    assert trace == SpotTrace(300.0, (3, 1, 3))
    assert [trace.at(t) for t in (0, 299, 300, 600, 900)] == [3, 3, 1, 3, 3]
    with pytest.raises(ValueError, match="gap_seconds"):
        SpotTrace(0.0, (1,))


def test_preempted_replicas_drain_within_the_notice_and_lose_nothing(tmp_path: pathlib.Path) -> None:
    scenario, config = _scenario(tmp_path, 1000)
    m = simulate(Fixed(), scenario.arrivals, config, record_timeline=False).metrics
    batch_total = scenario.arrivals.classes["batch"].total
    assert m.batch_lost == 0 and m.requeued == 0
    assert m.requests == pytest.approx(batch_total + scenario.arrivals.classes["interactive"].total)
    # three spot replicas until 300 s, one to 600 s (two preempted, billed through their drain, no
    # more than the notice), three again from 600 s (scheduled when the instances come back)
    span_s = scenario.arrivals.n_ticks * scenario.arrivals.tick_s
    batch_gpu_s = m.batch_cost_usd / config.policy_config.batch.price_per_gpu_hour * 3600
    base_s = span_s + 2 * 300.0 + 2 * (span_s - 600.0)
    assert base_s < batch_gpu_s <= base_s + 2 * 120.0
    assert m.to_json()["batch_deadline_missed"] == 0


def test_work_left_at_the_end_of_the_notice_is_requeued(tmp_path: pathlib.Path) -> None:
    scenario, config = _scenario(tmp_path, 2000)
    m = simulate(Fixed(), scenario.arrivals, replace(config, spot_notice_s=5.0), record_timeline=False).metrics
    assert m.requeued > 0
    assert m.batch_lost == 0
    everyone = scenario.arrivals.classes["batch"].total + scenario.arrivals.classes["interactive"].total
    assert m.requests == pytest.approx(everyone + m.requeued)  # served again, none lost
    span_s = scenario.arrivals.n_ticks * scenario.arrivals.tick_s
    batch_gpu_s = m.batch_cost_usd / config.policy_config.batch.price_per_gpu_hour * 3600
    assert batch_gpu_s == pytest.approx(span_s + 2 * 305.0 + 2 * (span_s - 600.0))


def test_a_run_without_batch_traffic_reports_no_batch_fields(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{i + 0.5},200,20\n" for i in range(60)))
    scenario = make_scenario(path, PROFILE)
    doc = simulate(Fixed(), scenario.arrivals, scenario.config, record_timeline=False).metrics.to_json()
    assert "batch_cost_usd" not in doc


def test_the_synthetic_spot_process_has_the_published_rates() -> None:
    days = 300
    trace = synthesize_spot_trace(7, days * 86400.0, 1, held_share=0.55, reacquisitions_per_day=6.85)
    held = sum(trace.counts) / len(trace.counts)
    regained = sum(1 for a, b in zip(trace.counts, trace.counts[1:], strict=False) if b > a)
    assert held == pytest.approx(0.55, abs=0.04)
    assert regained / days == pytest.approx(6.85, rel=0.1)
    assert max(synthesize_spot_trace(1, 86400.0, 4).counts) <= 4
