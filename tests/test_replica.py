"""Replica model: the service-time table, cold-start specs, and the per-request pool."""

from __future__ import annotations

import ast
import pathlib
import random

import pytest
from leadtime.replica import PROFILES, ColdStart, PoolModel, Request, get_profile, parse_cold_start

H100 = get_profile("llama-8b-h100")


@pytest.mark.parametrize(
    ("batch", "tpot_s"),
    [(1, 0.00715), (64, 0.0166), (256, 0.0454)],
)
def test_decode_step_grows_with_the_batch(batch: int, tpot_s: float) -> None:
    assert H100.tpot_s(batch) == pytest.approx(tpot_s, rel=1e-6)


@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "concurrency"),
    [(1000, 250, 256), (12000, 343, 34), (500_000, 10, 1)],
)
def test_concurrency_is_the_slot_or_kv_limit(input_tokens: int, output_tokens: int, concurrency: int) -> None:
    assert H100.max_concurrency(input_tokens, output_tokens) == concurrency


def test_throughput_and_latency_rise_with_the_batch() -> None:
    previous = (0.0, 0.0)
    for batch in (1, 4, 16, 64, 256):
        rps = H100.throughput_rps(1000, 250, batch)
        e2e = H100.latency_at(1000, 250, batch)[1]
        assert rps > previous[0] and e2e > previous[1]
        # Little's law: sequences in service = throughput x time in service.
        assert batch == pytest.approx(rps * e2e, rel=0.02)
        previous = (rps, e2e)


def test_every_profile_has_a_sane_saturation_throughput() -> None:
    assert len(PROFILES) >= 2
    for profile in PROFILES.values():
        assert 0.5 < profile.throughput_rps(1000, 250) < 50
    assert get_profile("llama-70b-4xh100").gpus_per_replica == 4


@pytest.mark.parametrize(
    ("spec", "p50_s", "p99_s"),
    [("30s", 30, 30), ("120", 120, 120), ("2m", 120, 120), ("fixed:45", 45, 45),
     ("lognormal:p50=22.7,p99=51.9", 22.7, 51.9)],
)
def test_cold_start_specs(spec: str, p50_s: float, p99_s: float) -> None:
    cold = parse_cold_start(spec)
    assert cold.p50_s == pytest.approx(p50_s)
    assert cold.p99_s == pytest.approx(p99_s, rel=1e-6)


def test_lognormal_cold_start_samples_match_its_quantiles() -> None:
    cold = parse_cold_start("lognormal:p50=22.7,p99=51.9")
    rng = random.Random(7)
    samples = sorted(cold.sample_s(rng) for _ in range(20000))
    assert samples[10000] == pytest.approx(22.7, rel=0.05)
    assert samples[19800] == pytest.approx(51.9, rel=0.1)


@pytest.mark.parametrize("spec", ["", "abc", "lognormal:p50=3", "lognormal:p50=9,p99=3", "lognormal:x=1"])
def test_bad_cold_start_specs_raise(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_cold_start(spec)


def _poisson(rate_rps: float, duration_s: float, seed: int = 1) -> list[Request]:
    rng = random.Random(seed)
    t, out = 0.0, []
    while True:
        t += rng.expovariate(rate_rps)
        if t >= duration_s:
            return out
        out.append(Request(t, 1000, 250))


def _run(pool: PoolModel, requests: list[Request], until_s: float) -> list[Request]:
    done, i = [], 0
    while pool.now_s < until_s:
        while i < len(requests) and requests[i].arrival_s < pool.now_s + 1.0:
            pool.submit(requests[i])
            i += 1
        done += pool.advance(1.0)
    return done


def test_single_request_latency_is_prefill_plus_decode() -> None:
    pool = PoolModel(H100)
    pool.add_replica()
    pool.submit(Request(0.5, 2000, 11))
    (done,) = _run(pool, [], 3.0)
    assert done.ttft_s == pytest.approx(2000 / 20000)
    assert done.e2e_s == pytest.approx(0.1 + 10 * H100.tpot_s(1))


def test_saturated_pool_runs_at_the_model_throughput() -> None:
    pool = PoolModel(H100)
    pool.add_replica()
    done = _run(pool, _poisson(30.0, 300.0), 300.0)
    measured = sum(1 for r in done if r.finished_s > 100.0) / 200.0
    assert measured == pytest.approx(H100.throughput_rps(1000, 250), rel=0.05)
    assert pool.queue_depth > 1000
    assert pool.metrics(0).running == H100.max_num_seqs


def test_removed_replica_requeues_its_requests_and_nothing_is_lost() -> None:
    pool = PoolModel(H100)
    first, second = pool.add_replica(), pool.add_replica()
    requests = _poisson(12.0, 120.0)
    done = _run(pool, requests[: len(requests) // 2], 60.0)
    in_flight = pool.metrics(first).running
    assert in_flight > 0
    assert pool.remove_replica(first) == in_flight
    assert pool.requeued == in_flight
    done += _run(pool, requests[len(requests) // 2 :], 400.0)
    assert len(done) == len(requests) == pool.completed
    assert second in pool.replica_ids and first not in pool.replica_ids
    assert sum(r.requeued for r in done) == in_flight


def test_queue_limit_drops_and_counts() -> None:
    pool = PoolModel(H100, queue_limit=5)
    accepted = [pool.submit(Request(0.0, 100, 10)) for _ in range(8)]
    assert accepted.count(False) == 3 and pool.dropped == 3


def test_replica_metrics_add_up_to_the_pool() -> None:
    pool = PoolModel(H100)
    ids = [pool.add_replica() for _ in range(3)]
    done = _run(pool, _poisson(20.0, 60.0), 60.0)
    metrics = [pool.metrics(i) for i in ids]
    assert sum(m.running for m in metrics) == pool.running
    assert sum(m.requests_completed_total for m in metrics) == len(done)
    # least-loaded dispatch spreads work evenly
    counts = [m.requests_completed_total for m in metrics]
    assert max(counts) - min(counts) < 0.2 * max(counts)


def test_replica_package_is_pure() -> None:
    forbidden = {"time", "kopf", "kubernetes", "requests", "os", "socket"}
    root = pathlib.Path(__file__).resolve().parents[1] / "operator" / "leadtime" / "replica"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            assert not forbidden.intersection(names), f"{path.name} imports {names}"


def test_load_test_is_the_fastest_concurrency_whose_latency_meets_the_slo() -> None:
    inp, out = H100.reference_input_tokens, H100.reference_output_tokens
    # a loose TTFT target: the full batch meets it, so the test reports saturation throughput
    loose = H100.load_test("ttft", 2.0)
    assert loose.concurrency == H100.max_concurrency(inp, out)
    assert loose.capacity_rps == pytest.approx(H100.throughput_rps(inp, out))
    # an e2e target of 15 s: the largest batch whose request still finishes in 15 s, not one more
    tight = H100.load_test("e2e", 15.0)
    assert H100.latency_at(inp, out, tight.concurrency)[1] <= 15.0 < H100.latency_at(inp, out, tight.concurrency + 1)[1]
    assert tight.capacity_rps < loose.capacity_rps
    # a target no single request meets: one at a time
    assert H100.load_test("ttft", 0.001).concurrency == 1


def test_load_test_is_at_the_profiles_reference_mix() -> None:
    longer = H100.from_dict({**H100.to_dict(), "reference_input_tokens": 8000, "reference_output_tokens": 500})
    assert longer.load_test("ttft", 2.0).capacity_rps < H100.load_test("ttft", 2.0).capacity_rps
    assert longer.load_test("ttft", 2.0).input_tokens == 8000
    with pytest.raises(ValueError, match="reference"):
        H100.from_dict({**H100.to_dict(), "reference_input_tokens": 0})


def test_every_profile_documents_its_load_test_mix() -> None:
    for profile in PROFILES.values():
        assert (profile.reference_input_tokens, profile.reference_output_tokens) == (1000.0, 250.0)


BIMODAL = [2.0, 3.0, 4.0, 20.0, 25.0, 30.0, 50.0]


def test_empirical_cold_start_draws_only_the_measured_values() -> None:
    cold = ColdStart.empirical(BIMODAL, spec="empirical:x")
    rng = random.Random(0)
    draws = [cold.sample_s(rng) for _ in range(2000)]
    assert set(draws) == set(BIMODAL)
    assert sum(d < 5 for d in draws) / len(draws) == pytest.approx(3 / 7, abs=0.05)
    assert cold.min_s == 2.0 and cold.p50_s == 20.0 and cold.quantile_s(1.0) == 50.0
    assert cold.p99_s == pytest.approx(48.8)  # between the two largest values, as numpy interpolates
    assert cold.mean_s == pytest.approx(sum(BIMODAL) / 7)


@pytest.mark.parametrize("values", [[], [1.0, -2.0], [float("nan")], [float("inf")]])
def test_empirical_cold_start_rejects_bad_values(values: list[float]) -> None:
    with pytest.raises(ValueError):
        ColdStart.empirical(values)


def test_empirical_spec_is_read_at_the_cli_not_in_the_pure_model() -> None:
    with pytest.raises(ValueError, match="file"):
        parse_cold_start("empirical:starts.txt")


def test_min_cold_start_of_fixed_and_lognormal() -> None:
    assert parse_cold_start("45s").min_s == 45.0
    assert parse_cold_start("lognormal:p50=22.7,p99=51.9").min_s == 0.0


def test_overflowing_durations_are_rejected() -> None:
    with pytest.raises(ValueError):
        parse_cold_start("9" * 400)
