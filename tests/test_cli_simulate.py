"""`leadtime simulate` as a user types it: flag values, seeds, slices, the prior and cold-start files."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leadtime.cli import main
from leadtime.replica import get_profile
from leadtime.sim.run import make_scenario
from leadtime.sim.traces import load_trace

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUMERIC_FLAGS = ("--rate-scale", "--slo-p95-s", "--tick-s", "--queue-limit", "--seed", "--seeds", "--prior-error",
                 "--start", "--duration", "--cold-start", "--scrape-interval")


@pytest.fixture(scope="module")
def tiny_trace(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """40 requests over 80 s: a run of one cheap policy takes milliseconds."""
    path = tmp_path_factory.mktemp("traces") / "tiny.csv"
    rows = [f"{2.0 * i:.1f},{200 + 37 * i % 900},{20 + 11 * i % 120}" for i in range(40)]
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_rates(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("traces") / "rates.csv"
    path.write_text("start_s,duration_s,rate_rps,input_tokens,output_tokens,iat_cv\n0,120,3,500,60,1\n120,120,6,500,60,2\n")
    return path


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


VALUES = st.one_of(
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**6, max_value=10**6).map(str),
    st.sampled_from(["0", "-1", "1e400", "-inf", "nan", "0x10", "1_000", " 2 ", "3s", "fixed:5", "empirical:",
                     "lognormal:p50=1,p99=2", "--json", "-x", ""]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(NUMERIC_FLAGS), value=VALUES, joined=st.booleans())
def test_any_flag_value_is_a_run_or_one_line_naming_the_flag(tiny_trace: pathlib.Path, flag: str, value: str,
                                                             joined: bool) -> None:
    if flag == "--seeds" and value.strip().isdigit() and int(value) > 3:
        value = "3"  # many seeds are a valid, slow run: keep the test quick
    typed = [f"{flag}={value}"] if joined else [flag, value]
    code, out, err = run_cli(["simulate", "--trace", str(tiny_trace), "--policy", "hpa", *typed])
    if code == 0:
        assert "hpa" in out and not err
    else:
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and flag in lines[0], err
        assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_bad_tick_is_an_error_not_a_traceback_or_100_percent(tiny_trace: pathlib.Path, value: str) -> None:
    code, out, err = run_cli(["simulate", "--trace", str(tiny_trace), "--policy", "hpa", f"--tick-s={value}"])
    assert code == 2 and "--tick-s" in err and "100.00%" not in out


@pytest.mark.parametrize("value", ["1.1125369292536007e-308", "0.01", "0"])
def test_a_vanishing_scrape_interval_is_an_error_not_an_overflow(tiny_trace: pathlib.Path, value: str) -> None:
    code, _, err = run_cli(["simulate", "--trace", str(tiny_trace), "--policy", "hpa", "--scrape-interval", value])
    assert code == 2 and err.count("\n") <= 1 and "--scrape-interval" in err, err


def test_module_entry_point_prints_one_line_not_a_traceback(tiny_trace: pathlib.Path) -> None:
    done = subprocess.run([sys.executable, "-m", "leadtime.cli", "simulate", "--trace", str(tiny_trace), "--tick-s", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["leadtime simulate: error: --tick-s: expected a number >= 0.01 and "
                                                "<= 60, got '0'"]


def test_seeds_report_the_mean_and_each_seed(tiny_rates: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r.json"
    code, text, _ = run_cli(["simulate", "--trace", str(tiny_rates), "--policy", "hpa,leadtime,static", "--seed", "4",
                             "--seeds", "3", "--json", str(out)])
    assert code == 0 and "mean over 3 seeds" in text
    doc = json.loads(out.read_text())
    assert [run["policy"] for run in doc["runs"]] == ["hpa", "leadtime", "static"]
    for run in doc["runs"]:
        assert [s["seed"] for s in run["per_seed"]] == [4, 5, 6]
        for field in ("gpu_hours", "slo_window_attainment", "requests", "p95_latency_s"):
            assert run[field] == pytest.approx(sum(s[field] for s in run["per_seed"]) / 3, rel=1e-5)
        # the rate trace's arrivals are drawn per seed
        assert len({s["requests"] for s in run["per_seed"]}) > 1


def test_one_seed_keeps_the_plain_runs(tiny_trace: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r.json"
    assert run_cli(["simulate", "--trace", str(tiny_trace), "--policy", "hpa", "--json", str(out)])[0] == 0
    assert "per_seed" not in json.loads(out.read_text())["runs"][0]


def test_slice_replays_only_the_requests_inside(tiny_trace: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r.json"
    code, _, _ = run_cli(["simulate", "--trace", str(tiny_trace), "--policy", "hpa", "--start", "20", "--duration", "30",
                          "--json", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["runs"][0]["requests"] == 15  # arrivals 20, 22, ..., 48 s
    assert doc["slice"] == {"start_s": 20.0, "duration_s": 30.0}


def test_slice_past_the_end_names_the_flag(tiny_trace: pathlib.Path) -> None:
    code, _, err = run_cli(["simulate", "--trace", str(tiny_trace), "--start", "500"])
    assert code == 2 and "--start" in err


def test_prior_comes_from_the_profiles_load_test_not_the_trace(tmp_path: pathlib.Path) -> None:
    profile = get_profile("llama-8b-h100")
    short, long = tmp_path / "short.csv", tmp_path / "long.csv"
    short.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{i},100,10\n" for i in range(60)))
    long.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{i},20000,900\n" for i in range(60)))
    priors = {make_scenario(path, profile).config.policy_config.replica_capacity_rps for path in (short, long)}
    assert priors == {round(profile.load_test("ttft", 2.0).capacity_rps, 2)}
    half = make_scenario(short, profile, prior_error=0.5).config.policy_config
    assert half.replica_capacity_rps == pytest.approx(profile.load_test("ttft", 2.0).capacity_rps * 0.5, abs=0.01)
    assert half.max_concurrency == profile.load_test("ttft", 2.0).concurrency
    with pytest.raises(ValueError):
        make_scenario(short, profile, prior_error=0.0)


def test_prior_error_flag_reaches_the_json(tiny_trace: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r.json"
    assert run_cli(["simulate", "--trace", str(tiny_trace), "--policy", "leadtime", "--prior-error", "2",
                    "--json", str(out)])[0] == 0
    prior = json.loads(out.read_text())["prior"]
    capacity = get_profile("llama-8b-h100").load_test("ttft", 2.0).capacity_rps
    assert prior["prior_error"] == 2.0 and prior["replica_capacity_rps"] == pytest.approx(2 * capacity, abs=0.01)


def test_empirical_cold_start_file(tiny_trace: pathlib.Path, tmp_path: pathlib.Path) -> None:
    shipped = ROOT / "benchmarks" / "cold-starts" / "bimodal.txt"
    code, out, _ = run_cli(["simulate", "--trace", str(tiny_trace), "--policy", "hpa",
                            "--cold-start", f"empirical:{shipped}"])
    assert code == 0 and "empirical:" in out
    bad = tmp_path / "bad.txt"
    bad.write_text("# seconds\n12\n\nfast\n")
    code, _, err = run_cli(["simulate", "--trace", str(tiny_trace), "--cold-start", f"empirical:{bad}"])
    assert code == 2 and "--cold-start" in err and "bad.txt:4" in err


def test_shipped_bimodal_file_has_the_documented_shape() -> None:
    from leadtime.sim.cli import read_cold_start

    cold = read_cold_start(f"empirical:{ROOT / 'benchmarks' / 'cold-starts' / 'bimodal.txt'}")
    assert sum(v < 5 for v in cold.samples_s) / len(cold.samples_s) == pytest.approx(1 / 3, abs=0.02)
    assert cold.p99_s == pytest.approx(52, abs=1.5) and cold.p50_s == pytest.approx(23.5, abs=0.5)


def test_request_trace_tokens_reach_the_slice_unchanged(tiny_trace: pathlib.Path) -> None:
    part = load_trace(tiny_trace).slice(10.0, 10.0)
    assert list(part.input_tokens) == [float(200 + 37 * i % 900) for i in range(5, 10)]


SPOT_FILE = pathlib.Path(__file__).parent / "data" / "spot-small.json"


@pytest.fixture(scope="module")
def mixed_trace(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("mixed") / "mixed.csv"
    rows = [f"{i * 0.5:.2f},300,400,batch" for i in range(2400)]
    rows += [f"{i * 0.25 + 0.1:.2f},500,60,interactive" for i in range(4800)]
    path.write_text("arrival_s,input_tokens,output_tokens,class\n" + "\n".join(sorted(rows, key=lambda r: float(r.split(",")[0]))) + "\n")
    return path


def test_batch_traffic_runs_on_spot_and_reports_its_bill_against_on_demand(mixed_trace: pathlib.Path,
                                                                          tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out.json"
    code, _, err = run_cli(["simulate", "--trace", str(mixed_trace), "--policy", "leadtime", "--cold-start", "20s",
                            "--spot-trace", str(SPOT_FILE), "--json", str(out)])
    assert code == 0, err
    run = json.loads(out.read_text())["runs"][0]
    assert run["batch_lost"] == 0
    # the batch pool ran at the spot price, preempted by the file; on-demand it would have cost more
    assert 0 < run["batch_cost_usd"] < run["batch_ondemand_cost_usd"]


def test_a_bad_spot_trace_names_the_flag(mixed_trace: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "spot.json"
    bad.write_text('{"data": [1, 0]}')
    for path in (bad, tmp_path / "missing.json"):
        code, _, err = run_cli(["simulate", "--trace", str(mixed_trace), "--policy", "leadtime",
                                "--spot-trace", str(path)])
        assert code == 2 and err.count("\n") <= 1 and "--spot-trace" in err, err
