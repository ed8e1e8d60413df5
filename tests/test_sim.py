"""Simulator: fluid model against the per-request replica model, a golden run, the CLI's JSON."""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import replace

import numpy as np
import pytest
from leadtime.cli import main
from leadtime.policy.types import INTERACTIVE, Decision, PoolDecision
from leadtime.replica import PoolModel, Request, get_profile
from leadtime.sim.clairvoyant import needed_replicas
from leadtime.sim.engine import simulate
from leadtime.sim.run import make_scenario, run_one
from leadtime.sim.traces import load_trace

TRACES = pathlib.Path(__file__).parents[1] / "benchmarks" / "traces"
PROFILE = get_profile("llama-8b-h100").with_cold_start("30s")


class Fixed:
    """A trivial policy: always `replicas` interactive replicas."""

    name = "fixed"
    interval_s = 15.0

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        return Decision(pools={INTERACTIVE: PoolDecision(self.replicas, "fixed")}, memory=memory)


def _per_request(scenario, replicas: int) -> tuple[float, float, float]:  # noqa: ANN001
    """p95 ttft, p95 e2e and completions/s of the event-driven PoolModel on the same arrivals."""
    cls = scenario.arrivals.classes["interactive"]
    pool = PoolModel(scenario.profile)
    for _ in range(replicas):
        pool.add_replica()
    requests = [Request(float(t), int(i), int(o)) for t, i, o in
                zip(cls.request_arrival_s, cls.request_input_tokens, cls.request_output_tokens, strict=True)]
    done, index, span = [], 0, scenario.arrivals.n_ticks
    while pool.now_s < span + 600:
        while index < len(requests) and requests[index].arrival_s < pool.now_s + 1.0:
            pool.submit(requests[index])
            index += 1
        done += pool.advance(1.0)
    ttft = np.percentile([r.ttft_s for r in done], 95)
    e2e = np.percentile([r.e2e_s for r in done], 95)
    return float(ttft), float(e2e), sum(1 for r in done if r.finished_s <= span) / span


@pytest.mark.sim
@pytest.mark.parametrize(("replicas", "slo_metric"), [(4, "e2e"), (3, "ttft")])
def test_fluid_model_matches_the_per_request_model(replicas: int, slo_metric: str) -> None:
    """Tolerance: p95 within 35% (or 0.25 s), throughput within 5%, on 20 min of Azure conv at 4x."""
    trace = load_trace(TRACES / "azure-conv.csv")
    short = trace.slice(0.0, 1200.0)
    scenario = make_scenario(short, PROFILE, rate_scale=4.0, slo_metric=slo_metric, slo_p95_s=5.0)
    from leadtime.sim.engine import simulate

    result = simulate(Fixed(replicas), scenario.arrivals, scenario.config)
    ttft, e2e, throughput = _per_request(scenario, replicas)
    reference = ttft if slo_metric == "ttft" else e2e
    assert result.metrics.p95_latency_s == pytest.approx(reference, rel=0.35, abs=0.25)
    served = result.metrics.requests / scenario.arrivals.n_ticks
    assert served == pytest.approx(throughput, rel=0.05)


@pytest.mark.sim
def test_golden_run_on_azure_code() -> None:
    """The clairvoyant planner meets the SLO cheaply; static meets it at peak cost; hpa scales."""
    scenario = make_scenario(TRACES / "azure-code.csv", PROFILE, rate_scale=10.0)
    runs = {name: run_one(name, {"replicas": scenario.clairvoyant_plan.peak} if name == "static" else {}, scenario)
            for name in ("clairvoyant", "static", "hpa")}
    clairvoyant, static, hpa = runs["clairvoyant"].metrics, runs["static"].metrics, runs["hpa"].metrics
    assert 10 <= scenario.peak_replicas <= 60
    assert static.slo_window_attainment >= 0.99
    # Clairvoyant and SLO-tight: it meets the SLO in >= 99% of windows, with the fewest GPU-hours.
    assert clairvoyant.slo_window_attainment >= 0.99
    assert clairvoyant.slo_request_attainment >= 0.98
    assert clairvoyant.gpu_hours < 0.6 * static.gpu_hours
    assert clairvoyant.gpu_hours < hpa.gpu_hours or clairvoyant.slo_window_attainment > hpa.slo_window_attainment
    assert hpa.scale_events > 0 and static.scale_events == 0
    assert all(m.dropped == 0 for m in (clairvoyant, static, hpa))
    # the trace's requests are all accounted for
    assert static.requests == pytest.approx(scenario.arrivals.classes["interactive"].total, rel=1e-6)


@pytest.mark.sim
def test_clairvoyant_keeps_a_replica_through_a_dip_shorter_than_a_cold_start() -> None:
    from leadtime.sim.clairvoyant import fill_dips, schedule

    need = np.array([3, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 3], dtype=float)
    # dips of 2 ticks are filled with a 3-tick cold start; the 6-tick dip is not
    assert list(fill_dips(need, 3)) == [3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3]
    # each replica is asked for exactly one cold start (3 ticks) before it is needed
    assert list(schedule(need, 3, floor=1)) == [3, 3, 3, 3, 3, 3, 1, 1, 1, 3, 3, 3, 3]


@pytest.mark.sim
def test_clairvoyant_searches_leaner_plans_and_a_shorter_cold_start_never_costs_more() -> None:
    from leadtime.sim.clairvoyant import GOAL_ATTAINMENT, _plan_at, base_need

    # Mooncake's long prompts: the step-1 capacity (latency at the mean tokens) under-rates a replica,
    # so the plan it starts from is beaten by leaner starts that the repair then fixes.
    moon = get_profile("llama-8b-h100")
    plans = {}
    for cold_s in (30, 600):
        scenario = make_scenario(TRACES / "mooncake-conversation.csv", moon.with_cold_start(f"{cold_s}s"),
                                 rate_scale=4.0, slo_metric="ttft", slo_p95_s=6.0)
        plans[cold_s] = scenario.clairvoyant_plan
        assert plans[cold_s].attainment >= GOAL_ATTAINMENT
        first = _plan_at(scenario.arrivals, scenario.config, GOAL_ATTAINMENT, 12, None, False,
                         base_need(scenario.arrivals, scenario.config), float(cold_s))
        assert first is not None
        assert plans[cold_s].run.metrics.gpu_hours < first[0].run.metrics.gpu_hours
    # a clairvoyant with a 30 s cold start can always follow the 600 s plan
    assert plans[30].run.metrics.gpu_hours <= plans[600].run.metrics.gpu_hours


class StepUp:
    """Two replicas, three from `at_s` on (every second)."""

    name = "step-up"
    interval_s = 1.0

    def __init__(self, at_s: float) -> None:
        self.at_s = at_s

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        from leadtime.sim.engine import EPOCH_S

        replicas = 3 if now_s - EPOCH_S >= self.at_s else 2
        return Decision(pools={INTERACTIVE: PoolDecision(replicas, "step")}, memory=memory)


@pytest.mark.parametrize("step_at_s", [None, 300.0])
def test_idle_gpu_share_on_a_hand_computed_case(tmp_path: pathlib.Path, step_at_s: float | None) -> None:
    """One 2000-token prompt with one output token per second: each keeps a replica busy 0.10715 s."""
    trace = tmp_path / "steady.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{i + 0.5},2000,1\n" for i in range(600)))
    scenario = make_scenario(trace, PROFILE)  # cold start 30 s
    from leadtime.sim.engine import simulate

    policy = StepUp(step_at_s if step_at_s is not None else 1e9)
    result = simulate(policy, scenario.arrivals, scenario.config)
    busy_s = 600 * (2000 / 20_000 + 1 * (0.007 + 0.00015))  # prefill + one decode step, alone
    span_s = 601  # the last arrival at 599.5 s; the trace ends a second later
    billed_s = 2 * span_s + (span_s - 300 if step_at_s is not None else 0)  # the third bills from creation
    assert result.metrics.gpu_hours == pytest.approx(billed_s / 3600)
    assert result.metrics.idle_gpu_share == pytest.approx(1 - busy_s / billed_s, abs=1e-4)


@pytest.mark.sim
def test_simulate_cli_writes_the_stable_json(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r.json"
    code = main(["simulate", "--trace", str(TRACES / "azure-code.csv"), "--rate-scale", "5",
                 "--cold-start", "60s", "--policy", "clairvoyant,static,hpa", "--sweep", "--json", str(out),
                 "--plot", str(tmp_path / "r.png")])
    assert code == 0
    doc = json.loads(out.read_text())
    assert {"trace", "profile", "cold_start", "slo", "runs"} <= set(doc)
    assert doc["cold_start"] == "60s"
    keys = {"policy", "params", "gpu_hours", "cost_usd", "slo_window_attainment", "slo_request_attainment",
            "p95_latency_s", "scale_events", "idle_gpu_share", "dropped", "requests",
            "gpu_seconds_per_request_in_slo", "wall_s"}
    assert all(keys <= set(run) for run in doc["runs"])
    for run in doc["runs"]:
        good = run["requests"] * run["slo_request_attainment"]
        assert run["gpu_seconds_per_request_in_slo"] == pytest.approx(run["gpu_hours"] * 3600 / good, rel=1e-3)
    assert sum(run["policy"] == "hpa" for run in doc["runs"]) >= 6
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_queue_limit_drops_are_reported() -> None:
    scenario = make_scenario(TRACES / "azure-code.csv", PROFILE, rate_scale=10.0, queue_limit=50)
    from leadtime.sim.engine import simulate

    result = simulate(Fixed(1), scenario.arrivals, scenario.config)
    assert result.metrics.dropped > 0


class Recording(Fixed):
    """Fixed replicas, and remembers the Ready interactive pods and arrival rate each decision saw."""

    def __init__(self, replicas: int) -> None:
        super().__init__(replicas)
        self.ready_seen: list[int] = []
        self.rates_seen: list[float | None] = []
        self.running_seen: list[float | None] = []

    def decide(self, config, observation, pools, memory, now_s):  # noqa: ANN001, ANN201
        self.ready_seen.append(pools[INTERACTIVE].ready_count)
        self.rates_seen.append(observation.interactive.arrival_rate_rps)
        self.running_seen.append(observation.interactive.running)
        return super().decide(config, observation, pools, memory, now_s)


def test_a_policy_that_never_rescales_sees_its_initial_replicas_ready() -> None:
    scenario = make_scenario(TRACES / "azure-conv.csv", PROFILE, rate_scale=2.0)
    policy = Recording(3)
    simulate(policy, scenario.arrivals, replace(scenario.config, initial_replicas=0), record_timeline=False)
    # The first decision creates the deployment; every later one must see those 3 pods Ready.
    assert policy.ready_seen[0] == 0
    assert set(policy.ready_seen[1:]) == {3}


def test_every_policy_starts_from_the_warm_pool_already_serving_the_first_minute() -> None:
    scenario = make_scenario(TRACES / "azure-conv.csv", PROFILE, rate_scale=2.0)
    warm = scenario.config.initial_replicas
    # enough for the first minute's busiest 10 s at the SLO: more than its mean rate over the prior
    first_minute_rps = scenario.arrivals.classes["interactive"].count[:60].sum() / 60.0
    assert warm > math.ceil(first_minute_rps / scenario.config.policy_config.replica_capacity_rps)
    need = needed_replicas(scenario.arrivals.classes["interactive"], PROFILE, 1.0, "ttft", 2.0)
    assert warm == int(need[:60].max())
    policy = Recording(warm)
    simulate(policy, scenario.arrivals, scenario.config, record_timeline=False)
    # Ready from the first decision on, and never a cold start since the policy asks for the same count.
    assert set(policy.ready_seen) == {warm}


def test_a_warm_pool_comes_with_a_full_metrics_window() -> None:
    # Prometheus has been scraping the warm deployment: the first decision sees the first minute's
    # completions rate, not an empty window (no rate at all) nor one second's burst.
    scenario = make_scenario(TRACES / "azure-conv.csv", PROFILE, rate_scale=2.0)
    counts = scenario.arrivals.classes["interactive"].count
    policy = Recording(scenario.config.initial_replicas)
    simulate(policy, scenario.arrivals, scenario.config, record_timeline=False)
    first_minute_rps = counts[:60].sum() / 60.0  # what the window is seeded with
    # the seeded samples are a steady counter: rate() over them is that rate exactly
    assert policy.rates_seen[0] == pytest.approx(first_minute_rps)
    # after two minutes the window holds only the trace's own completions (the pool keeps up:
    # about the arrivals of the minute before the newest scrape)
    later = round(120 / policy.interval_s)
    now_s = later * policy.interval_s
    assert policy.rates_seen[later] == pytest.approx(counts[int(now_s) - 67 : int(now_s) - 7].sum() / 60.0, rel=0.15)


def test_running_is_what_a_scrape_sees_even_when_requests_are_shorter_than_a_tick(tmp_path: pathlib.Path) -> None:
    # 20 rps of short requests (well under a second each) on 5-s ticks: every request finishes
    # within the tick it starts in, yet a scrape of the running gauge sees about rate × e2e of them
    # in flight (Little). Reading what is left after the tick's departures saw 0, and an HPA on
    # in-flight requests scaled a busy pool down to one replica.
    path = tmp_path / "short.csv"
    rows = [f"{i / 20:.2f},100,10" for i in range(20 * 600)]
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    scenario = make_scenario(path, PROFILE, tick_s=5.0)
    policy = Recording(4)
    simulate(policy, scenario.arrivals, scenario.config, record_timeline=False)
    # The fluid model admits a tick's 100 arrivals together, so they run as one batch of 25 per
    # replica for b × cost_per_request_s(b) seconds: that is the concurrency a scrape sees on average.
    batch = 100 / 4
    in_service_s = batch * PROFILE.cost_per_request_s(100.0, 10.0, batch)
    assert in_service_s < 5.0
    seen = policy.running_seen[13:]  # after the first minute
    assert min(seen) > 0
    assert np.mean(seen) == pytest.approx(100 * in_service_s / 5.0, rel=0.05)
