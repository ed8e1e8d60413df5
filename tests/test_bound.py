"""The fluid lower bound: its value by hand, its invariances, and no run that drops nothing below it."""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leadtime.cli import main
from leadtime.policy import POLICIES
from leadtime.policy.types import PolicyConfig
from leadtime.replica import ReplicaProfile, get_profile
from leadtime.sim.bound import fluid_bound, max_batch_reached, run_floor_gpu_hours
from leadtime.sim.engine import SimConfig, simulate
from leadtime.sim.run import POLICY_NAMES, make_scenario, policy_runs, run_one
from leadtime.sim.traces import Arrivals, ClassArrivals, Trace, build_arrivals, load_trace

TRACES = pathlib.Path(__file__).parents[1] / "benchmarks" / "traces"
PROFILE = get_profile("llama-8b-h100")
TINY = ReplicaProfile(name="tiny", prefill_tokens_per_s=1000.0, decode_base_s=0.01, decode_per_seq_s=0.001,
                      max_num_seqs=4, kv_cache_tokens=100_000, gpus_per_replica=2, price_per_gpu_hour=3.0)


def _arrivals(counts, inputs, outputs, tick_s: float = 1.0, batch: ClassArrivals | None = None) -> Arrivals:  # noqa: ANN001
    n = len(counts)
    empty = ClassArrivals(np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n))
    interactive = ClassArrivals(np.asarray(counts, dtype=np.int64), np.asarray(inputs, dtype=float),
                                np.asarray(outputs, dtype=float))
    return Arrivals(tick_s, n, {"interactive": interactive, "batch": batch or empty})


def _config(profile: ReplicaProfile) -> SimConfig:
    policy_config = PolicyConfig(max_replicas=1000, gpus_per_replica=profile.gpus_per_replica,
                                 price_per_gpu_hour=profile.price_per_gpu_hour)
    return SimConfig(profile=profile, policy_config=policy_config)


def test_bound_of_a_tiny_trace_by_hand() -> None:
    """10 requests of 100 + 10 tokens on a 4-slot, 2-GPU replica: GPU-hours and cost worked out on paper."""
    arrivals = _arrivals([10, 0, 0], [100, 0, 0], [10, 0, 0])
    bound = fluid_bound(arrivals, _config(TINY))
    # c(B) = 100/1000 + 10 * (0.001 + 0.01/B) = 0.11 + 0.1/B; the engine's largest batch solves
    # B = 4 + 1 s / c(B), i.e. 0.11 B^2 - 1.34 B - 0.4 = 0.
    batch = (1.34 + math.sqrt(1.34**2 + 4 * 0.11 * 0.4)) / (2 * 0.11)
    assert bound.max_batch["interactive"] == pytest.approx(batch, rel=1e-6)
    replica_s = 10 * (0.11 + 0.1 / batch)
    assert bound.gpu_hours == pytest.approx(2 * replica_s / 3600, rel=1e-4)
    assert bound.cost_usd == pytest.approx(3.0 * 2 * replica_s / 3600, rel=1e-4)
    assert bound.requests == 10 and bound.windows == 1


def test_bound_is_linear_in_the_work() -> None:
    """Twice the requests at the same tokens: twice the bound (the largest batch does not depend on counts)."""
    counts = [3, 0, 5, 8, 0, 1]
    inputs, outputs = [800, 0, 1200, 300, 0, 50], [100, 0, 300, 20, 0, 900]
    once = fluid_bound(_arrivals(counts, inputs, outputs), _config(PROFILE))
    twice = fluid_bound(_arrivals([2 * c for c in counts], inputs, outputs), _config(PROFILE))
    # to within the engine's rounding dust (1e-6 request per tick), taken off the work
    assert twice.gpu_hours == pytest.approx(2 * once.gpu_hours, rel=1e-4)
    assert twice.max_batch == once.max_batch


def test_bound_counts_batch_work_at_the_cheaper_price() -> None:
    n = 4
    batch = ClassArrivals(np.array([0, 6, 0, 0]), np.array([0.0, 500, 0, 0]), np.array([0.0, 200, 0, 0]))
    only_interactive = fluid_bound(_arrivals([6, 0, 0, 0], [500] * n, [200] * n), _config(PROFILE))
    both = fluid_bound(_arrivals([6, 0, 0, 0], [500] * n, [200] * n, batch=batch), _config(PROFILE))
    assert both.gpu_hours == pytest.approx(2 * only_interactive.gpu_hours, rel=1e-6)
    config = _config(PROFILE)
    batch_price = config.policy_config.batch.price_per_gpu_hour
    expected = only_interactive.cost_usd * (1 + min(batch_price, PROFILE.price_per_gpu_hour) / PROFILE.price_per_gpu_hour)
    assert both.cost_usd == pytest.approx(expected, rel=1e-6)


def test_bound_does_not_depend_on_the_cold_start() -> None:
    trace = _slice(load_trace(TRACES / "azure-conv.csv"), 600.0)
    hours = {cold: make_scenario(trace, PROFILE.with_cold_start(cold), rate_scale=10).bound.gpu_hours
             for cold in ("5s", "120s", "600s", "lognormal:p50=84,p99=150")}
    assert len(set(hours.values())) == 1 and next(iter(hours.values())) > 0


def test_bound_is_per_seed_on_a_rate_trace() -> None:
    """Rate traces draw their arrivals from the seed: each seed has its own bound, of its own arrivals."""
    trace = _slice(load_trace(TRACES / "servegen-m-mid.csv"), 600.0)
    bounds = {seed: make_scenario(trace, PROFILE, rate_scale=0.05, seed=seed).bound.gpu_hours for seed in (0, 1)}
    assert bounds[0] != bounds[1]
    for seed, hours in bounds.items():
        scenario = make_scenario(trace, PROFILE, rate_scale=0.05, seed=seed)
        assert hours == fluid_bound(build_arrivals(trace, tick_s=1.0, rate_scale=0.05, seed=seed), scenario.config).gpu_hours
        assert hours == pytest.approx(bounds[0], rel=0.2)  # same trace, same mean work


def test_largest_batch_is_the_slot_or_kv_limit_plus_a_ticks_departures() -> None:
    """The fluid engine credits a tick's departures as free slots: its batch passes max_num_seqs by them."""
    cls = _arrivals([5], [1000], [200]).classes["interactive"]
    cost_s = PROFILE.cost_per_request_s(1000, 200, 256)
    batch = max_batch_reached(cls, PROFILE, 1.0)
    assert 256 + 1.0 / cost_s * 0.95 < batch < 256 + 1.0 / cost_s * 1.05
    # long prompts: the KV limit, not the slot limit
    long = _arrivals([5], [12000], [300]).classes["interactive"]
    assert max_batch_reached(long, PROFILE, 1.0) < 0.5 * 256


def _slice(trace: Trace, span_s: float) -> Trace:
    """The trace's first `span_s` seconds (rate windows cut at the end)."""
    return trace.slice(0.0, span_s)


def _scale_for(trace: Trace, replicas: float) -> float:
    """The rate scale at which the slice's mean load needs about `replicas` replicas at a full batch."""
    arrivals = build_arrivals(trace, tick_s=1.0, rate_scale=1.0, seed=0)
    cls = arrivals.classes["interactive"]
    work_s = float((cls.count * (cls.input_tokens / PROFILE.prefill_tokens_per_s
                                 + cls.output_tokens * PROFILE.tpot_s(256) / 256)).sum())
    return replicas * arrivals.n_ticks * arrivals.tick_s / work_s


SLICES = {"azure-conv": 900.0, "azure-code": 900.0, "mooncake-conversation": 900.0, "servegen-m-mid": 600.0}


@pytest.mark.sim
@pytest.mark.parametrize("name", sorted(SLICES))
@pytest.mark.parametrize("cold_start", ["30s", "300s"])
def test_no_run_that_drops_nothing_spends_less_than_the_bound(name: str, cold_start: str) -> None:
    trace = _slice(load_trace(TRACES / f"{name}.csv"), SLICES[name])
    scenario = make_scenario(trace, PROFILE.with_cold_start(cold_start), rate_scale=_scale_for(trace, 6.0))
    bound = run_one("bound", {}, scenario)
    assert bound.metrics.slo_window_attainment == bound.metrics.slo_request_attainment == 1.0
    assert bound.to_json()["x_bound"] == 1.0
    names = [n for n in POLICY_NAMES if n != "bound"] + [n for n in POLICIES if n not in POLICY_NAMES]
    runs = [run for n in POLICY_NAMES if n != "bound" for run in policy_runs([n], scenario, sweep=False)]
    runs += [(n, {}) for n in POLICIES if n not in POLICY_NAMES]
    assert {n for n, _ in runs} == set(names)
    for policy, params in runs:
        result = run_one(policy, params, scenario, record_timeline=False)
        assert result.to_json()["x_bound"] == pytest.approx(result.metrics.gpu_hours / bound.metrics.gpu_hours, rel=1e-3)
        if result.metrics.dropped == 0:
            floor = run_floor_gpu_hours(scenario.bound, result.metrics, scenario.profile)
            assert result.metrics.gpu_hours >= floor, (policy, params)
            if result.metrics.unserved < 1.0:  # finished everything: the bound itself holds
                assert result.metrics.gpu_hours >= bound.metrics.gpu_hours, (policy, params)
                assert result.metrics.cost_usd >= bound.metrics.cost_usd - 0.01


class _Static:
    name = "static"
    interval_s = 5.0

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        from leadtime.policy.types import INTERACTIVE, Decision, PoolDecision

        return Decision(pools={INTERACTIVE: PoolDecision(self.replicas, "static")}, memory={})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 40), st.floats(1, 16_000), st.floats(1, 2_000)), min_size=1, max_size=30))
def test_bound_never_exceeds_static_with_enough_replicas(ticks: list[tuple[int, float, float]]) -> None:
    """Any token mix: static with enough replicas to serve it all (an idle tail to finish) costs more."""
    tail = 60
    counts = [c for c, _, _ in ticks] + [0] * tail
    inputs = [i for _, i, _ in ticks] + [0.0] * tail
    outputs = [o for _, _, o in ticks] + [0.0] * tail
    arrivals = _arrivals(counts, inputs, outputs)
    config = _config(PROFILE)
    bound = fluid_bound(arrivals, config)
    busiest_s = max(c * PROFILE.cost_per_request_s(i, o, PROFILE.max_concurrency(i, o)) for c, i, o in ticks)
    replicas = max(1, math.ceil(busiest_s)) + 1
    run = simulate(_Static(replicas), arrivals, replace(config, initial_replicas=replicas), record_timeline=True)
    assert run.metrics.dropped == 0 and run.timeline.queued[-1] == 0
    assert run.metrics.gpu_hours >= bound.gpu_hours


def test_cli_reports_the_bound_and_x_bound(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{i * 0.5},500,100\n" for i in range(240)))
    out = tmp_path / "r.json"
    assert main(["simulate", "--trace", str(trace), "--policy", "bound,static,hpa", "--cold-start", "30s",
                 "--json", str(out)]) == 0
    runs = {r["policy"]: r for r in json.loads(out.read_text())["runs"]}
    assert runs["bound"]["x_bound"] == 1.0 and runs["bound"]["slo_window_attainment"] == 1.0
    assert runs["static"]["x_bound"] == pytest.approx(runs["static"]["gpu_hours"] / runs["bound"]["gpu_hours"], rel=0.05)
    assert runs["static"]["x_bound"] > 1.0 and runs["hpa"]["x_bound"] > 1.0
    assert "bound" in capsys.readouterr().out
