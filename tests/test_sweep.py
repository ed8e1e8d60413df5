"""The --sweep planner (target grids, then behaviour knobs around the best targets) and its process runner."""

from __future__ import annotations

import pathlib
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from leadtime.policy import make_policy
from leadtime.policy.baselines.common import geometric_grid
from leadtime.policy.types import PolicyConfig
from leadtime.replica import get_profile
from leadtime.sim.run import make_scenario, policy_runs
from leadtime.sim.sweep import (
    TARGET_PARAM,
    chosen_targets,
    first_pass,
    run_many,
    run_seeds,
    run_sweep,
    second_pass,
)
from leadtime.sim.traces import load_trace

TRACES = pathlib.Path(__file__).parents[1] / "benchmarks" / "traces"
SWEPT = ["hpa", "keda-waiting", "hpa-rps", "kpa"]


def targets_of(runs, name):
    return [params[TARGET_PARAM[name]] for n, params in runs if n == name]


def assert_fine_grid(targets, low, high):
    assert targets == sorted(targets)
    assert all(b / a <= 1.25 for a, b in zip(targets, targets[1:], strict=False))
    # The ends are the stated range, to the three significant digits the targets carry.
    assert targets[0] == pytest.approx(low, rel=0.005)
    assert targets[-1] == pytest.approx(high, rel=0.005)


@settings(max_examples=60, deadline=None)
@given(slots=st.integers(1, 2048), capacity_rps=st.floats(0.01, 1000.0))
def test_pass_one_covers_each_baselines_range_no_coarser_than_x1_25(slots, capacity_rps):
    config = PolicyConfig(max_concurrency=slots, replica_capacity_rps=capacity_rps)
    runs = first_pass(SWEPT + ["leadtime", "static"], config)
    assert {name for name, _ in runs} == set(SWEPT)  # only the swept baselines
    top = max(slots, 2)
    assert_fine_grid(targets_of(runs, "hpa"), 1.0, top)
    assert_fine_grid(targets_of(runs, "kpa"), 1.0, top)
    assert_fine_grid(targets_of(runs, "keda-waiting"), 0.5, top)
    assert_fine_grid(targets_of(runs, "hpa-rps"), 0.1 * capacity_rps, 2.0 * capacity_rps)


@given(low=st.floats(1e-3, 1e3), span=st.floats(1.0, 1e4))
def test_geometric_grid_steps_are_never_coarser_than_asked(low, span):
    grid = geometric_grid(low, low * span)
    assert_fine_grid(grid, low, low * span)


def test_geometric_grid_refuses_an_empty_range():
    with pytest.raises(ValueError):
        geometric_grid(2.0, 1.0)
    with pytest.raises(ValueError):
        geometric_grid(0.0, 1.0)


def test_every_planned_run_is_a_valid_policy():
    config = PolicyConfig(max_concurrency=256, replica_capacity_rps=8.4)
    first = first_pass(SWEPT, config)
    results = [fake_result(name, params, gpu_hours=100.0 / (1 + i), attainment=1.0 - i / 100)
               for i, (name, params) in enumerate(first)]
    for name, params in first + second_pass(results):
        assert make_policy(name, **params).name == name


def fake_result(name, params, gpu_hours, attainment):
    full = {**make_policy(name, **params).params(), **params}
    return SimpleNamespace(policy=name, params=full,
                           metrics=SimpleNamespace(gpu_hours=gpu_hours, slo_window_attainment=attainment))


# target, GPU-hours, window attainment: cost falls and attainment falls as the target grows.
FRONTIER = [(1.0, 60.0, 1.0), (1.25, 50.0, 1.0), (1.56, 45.0, 1.0), (1.95, 40.0, 0.995),
            (2.44, 38.0, 0.97), (3.05, 36.0, 0.96), (3.81, 35.0, 0.90), (4.77, 34.0, 0.80)]


def test_chosen_targets_are_the_99_percent_point_its_neighbours_and_the_95_percent_point():
    # cheapest ≥ 99 %: 1.95 (40 GPU-h), two grid steps either side; cheapest ≥ 95 %: 3.05
    assert chosen_targets(FRONTIER) == [1.25, 1.56, 1.95, 2.44, 3.05]


def test_chosen_targets_fall_back_to_the_95_percent_point_then_the_best_attainment():
    below_99 = [(t, g, min(a, 0.98)) for t, g, a in FRONTIER]
    assert chosen_targets(below_99) == [1.95, 2.44, 3.05, 3.81, 4.77]  # anchored on 3.05 (cheapest ≥ 95 %)
    poor = [(1.0, 60.0, 0.5), (2.0, 50.0, 0.7), (4.0, 40.0, 0.7), (8.0, 30.0, 0.2)]
    assert chosen_targets(poor) == [1.0, 2.0, 4.0, 8.0]  # the cheapest of the best-attaining: 4.0


def test_pass_two_tunes_every_behaviour_knob_around_the_chosen_targets_only():
    results = [fake_result("hpa", {"target_in_flight_per_pod": t}, g, a) for t, g, a in FRONTIER]
    results += [fake_result("kpa", {"target_concurrency": t}, g, a) for t, g, a in FRONTIER]
    runs = second_pass(results)
    hpa = [p for n, p in runs if n == "hpa"]
    kpa = [p for n, p in runs if n == "kpa"]
    chosen = {1.25, 1.56, 1.95, 2.44, 3.05}
    assert {p["target_in_flight_per_pod"] for p in hpa} == chosen
    knobs = {(p["scale_down_stabilization_s"], p["tolerance"]) for p in hpa}
    assert knobs == {(w, t) for w in (0.0, 60.0, 300.0, 600.0) for t in (0.05, 0.1)} - {(300.0, 0.1)}
    assert len(hpa) == len(chosen) * 7  # the default behaviour already ran in pass 1
    assert {p["target_concurrency"] for p in kpa} == chosen
    assert {p["stable_window_s"] for p in kpa} == {30.0, 120.0}
    assert len(kpa) == len(chosen) * 2


def test_pass_two_ignores_runs_without_a_grid_and_runs_already_tuned():
    single = [fake_result("hpa", {}, 40.0, 1.0), fake_result("leadtime", {}, 30.0, 1.0)]
    assert second_pass(single) == []
    tuned = [fake_result("hpa", {"target_in_flight_per_pod": t, "tolerance": 0.05}, g, a) for t, g, a in FRONTIER]
    assert second_pass(tuned) == []


@pytest.fixture(scope="module")
def short_scenario():
    trace = load_trace(TRACES / "azure-conv.csv")
    short = trace.slice(0.0, 600.0)
    return make_scenario(short, get_profile("llama-8b-h100").with_cold_start("60s"), rate_scale=10.0)


RUNS = [("hpa", {"target_in_flight_per_pod": 4.0}), ("kpa", {"stable_window_s": 30.0}),
        ("hpa-rps", {"target_rps_per_pod": 2.0}), ("keda-waiting", {"target_waiting_per_pod": 1.0}),
        ("leadtime", {}), ("hpa", {"target_in_flight_per_pod": 32.0, "scale_down_stabilization_s": 0.0})]


def test_worker_processes_give_the_in_process_results_in_input_order(short_scenario):
    seen = []
    in_process = run_many(RUNS, short_scenario, workers=1, record_timeline=False)
    in_workers = run_many(RUNS, short_scenario, workers=2, record_timeline=False, on_result=seen.append)
    assert [r.policy for r in in_workers] == [name for name, _ in RUNS]
    assert [r.metrics.gpu_hours for r in in_workers] == [r.metrics.gpu_hours for r in in_process]
    assert [r.metrics.slo_window_attainment for r in in_workers] == [r.metrics.slo_window_attainment for r in in_process]
    assert seen == in_workers
    assert len({r.metrics.gpu_hours for r in in_process}) > 1  # the runs differ, so the order is tested


def test_a_sweep_runs_pass_two_after_pass_one(short_scenario):
    runs = policy_runs(["leadtime", "hpa-rps"], short_scenario, sweep=True)
    results = run_sweep(runs, short_scenario, workers=2, record_timeline=False)
    assert [(r.policy, r.params.get("target_rps_per_pod")) for r in results[:len(runs)]] == [
        (name, params.get("target_rps_per_pod")) for name, params in runs]
    tuned = results[len(runs):]
    assert tuned and all(r.policy == "hpa-rps" for r in tuned)
    assert {r.params["scale_down_stabilization_s"] for r in tuned} == {0.0, 60.0, 300.0, 600.0}


def test_seeds_run_one_run_list_with_pass_two_chosen_on_the_mean():
    trace = load_trace(TRACES / "azure-conv.csv")
    short = trace.slice(0.0, 600.0)
    profile = get_profile("llama-8b-h100").with_cold_start("lognormal:p50=40,p99=90")
    seeds = [make_scenario(short, profile, rate_scale=10.0, seed=seed) for seed in (0, 1)]
    runs = policy_runs(["hpa-rps"], seeds[0], sweep=True)
    per_run = run_seeds(runs, seeds, workers=2)
    assert all(len(results) == 2 for results in per_run)
    assert all(len({repr(sorted(r.params.items())) for r in results}) == 1 for results in per_run)
    # the cold-start draws differ by seed, so the two seeds' bills differ for some run
    assert any(results[0].metrics.gpu_hours != results[1].metrics.gpu_hours for results in per_run)
    # pass 2 is what second_pass picks from the means of pass 1
    first = per_run[:len(runs)]
    means = [SimpleNamespace(policy=r[0].policy, params=r[0].params, metrics=SimpleNamespace(
        gpu_hours=sum(x.metrics.gpu_hours for x in r) / 2,
        slo_window_attainment=sum(x.metrics.slo_window_attainment for x in r) / 2)) for r in first]
    assert [(r[0].policy, r[0].params) for r in per_run[len(runs):]] == second_pass(means)


def test_run_many_refuses_zero_workers(short_scenario):
    with pytest.raises(ValueError, match="workers"):
        run_many(RUNS, short_scenario, workers=0)
