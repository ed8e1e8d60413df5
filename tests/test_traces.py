"""Trace formats and importers, on small fixtures cut from the real files' formats."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from leadtime.cli import main
from leadtime.sim import traces
from leadtime.sim.traces import (
    DEFAULT_P95_OVER_MEAN,
    Z95,
    Trace,
    TraceError,
    build_arrivals,
    load_trace,
    lognormal_sigma,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "traces"


def test_azure_import_gives_seconds_from_the_first_request(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "azure.csv"
    assert main(["trace", "import", "--format", "azure", str(FIXTURES / "azure-sample.csv"), "-o", str(out)]) == 0
    trace = load_trace(out)
    assert trace.kind == "requests" and len(trace.start_s) == 59
    assert trace.start_s[0] == 0.0 and trace.start_s[1] == pytest.approx(4.315, abs=1e-3)
    assert trace.input_tokens[0] == 374 and trace.output_tokens[0] == 44


def test_mooncake_import(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "mooncake.csv"
    assert main(["trace", "import", "--format", "mooncake", str(FIXTURES / "mooncake-sample.jsonl"),
                 "-o", str(out)]) == 0
    trace = load_trace(out)
    assert len(trace.start_s) == 40 and trace.input_tokens[0] == 6758


def test_servegen_import_aggregates_clients(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "sg.csv"
    assert main(["trace", "import", "--format", "servegen", str(FIXTURES / "servegen-sample.tar.gz"),
                 "-o", str(out)]) == 0
    trace = load_trace(out)
    assert trace.kind == "rates"
    assert set(trace.duration_s) == {600.0}
    # client 24 has token PDFs (mean input 200, output 10); rows are split by burstiness band
    at = trace.start_s == 1073400
    assert trace.rate_rps[at].sum() == pytest.approx(83.3333, abs=1e-3)
    assert trace.input_tokens[at & (trace.rate_rps > 80)][0] == pytest.approx(200.0)


def test_bad_inputs_are_one_line_errors(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,input_tokens,output_tokens\n1,2,x\n")
    assert main(["simulate", "--trace", str(bad)]) == 2
    assert "bad.csv:2" in capsys.readouterr().err
    assert main(["trace", "import", "--format", "azure", str(tmp_path / "missing"), "-o", str(bad)]) == 2
    with pytest.raises(TraceError):
        load_trace(tmp_path / "missing.csv")


def test_rate_trace_synthesis_keeps_the_rate_and_is_seeded(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("start_s,duration_s,rate_rps,input_tokens,output_tokens,iat_cv,class\n"
                    "0,600,5,100,10,1,\n600,600,50,200,20,2,\n1200,600,3,100,10,1,batch\n")
    trace = load_trace(path)
    first = build_arrivals(trace, seed=3)
    again = build_arrivals(trace, seed=3)
    inter = first.classes["interactive"]
    assert np.array_equal(inter.count, again.classes["interactive"].count)
    assert inter.count[:600].sum() == pytest.approx(3000, rel=0.1)
    assert inter.count[600:1200].sum() == pytest.approx(30000, rel=0.1)
    assert first.classes["batch"].count[1200:].sum() == pytest.approx(1800, rel=0.15)
    # CV 2 is burstier than Poisson at 1-s resolution
    assert inter.count[600:1200].std() > 1.5 * np.sqrt(50)


def test_request_trace_rate_scale_replicates_and_thins() -> None:
    trace = load_trace(pathlib.Path(__file__).parents[1] / "benchmarks" / "traces" / "azure-code.csv")
    assert build_arrivals(trace, rate_scale=3.0).classes["interactive"].total == pytest.approx(3 * 8819, rel=0.02)
    assert build_arrivals(trace, rate_scale=0.5).classes["interactive"].total == pytest.approx(8819 / 2, rel=0.05)


def test_scaled_copies_are_not_piled_up_at_the_trace_edges(tmp_path: pathlib.Path) -> None:
    # A steady 10 rps for 10 minutes, scaled x4: copies jittered before 0 s or past the end are
    # reflected back in, so the first and last seconds carry the same ~40 arrivals as the rest
    # (clipping used to put every copy shifted before 0 into the first second: ~5x the mean).
    path = tmp_path / "steady.csv"
    rows = [f"{i / 10:.1f},100,10" for i in range(6000)]
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    count = build_arrivals(load_trace(path), rate_scale=4.0, seed=1).classes["interactive"].count
    assert count.sum() == pytest.approx(4 * 6000, rel=0.02)
    assert count[0] < 60 and count[-1] < 60
    assert count[:10].mean() == pytest.approx(40, rel=0.25) and count[-10:].mean() == pytest.approx(40, rel=0.25)


def test_servegen_import_gives_the_p95_of_the_clients_length_pdfs(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "sg.csv"
    assert main(["trace", "import", "--format", "servegen", str(FIXTURES / "servegen-sample.tar.gz"),
                 "-o", str(out)]) == 0
    trace = load_trace(out)
    # client 24's PDFs: input 100 or 300 tokens (half each), output always 10; client 50 has none and
    # takes the mixture of those with data
    assert set(trace.input_p95) == {300.0} and set(trace.output_p95) == {10.0}


def _rates(tmp_path: pathlib.Path, text: str) -> Trace:
    path = tmp_path / "rates.csv"
    path.write_text(text)
    return load_trace(path)


def test_rate_trace_requests_draw_lengths_with_the_rows_mean_and_p95(tmp_path: pathlib.Path) -> None:
    trace = _rates(tmp_path, "start_s,duration_s,rate_rps,input_tokens,output_tokens,iat_cv,input_p95,output_p95\n"
                             "0,600,50,400,100,1,1200,250\n600,600,50,2000,20,1,5000,60\n")
    inter = build_arrivals(trace, seed=1).classes["interactive"]
    first, second = inter.first[600], inter.first[-1] + inter.count[-1]
    for lo, hi, mean_in, p95_in, mean_out, p95_out in ((0, first, 400, 1200, 100, 250),
                                                       (first, second, 2000, 5000, 20, 60)):
        inp, out = inter.request_input_tokens[lo:hi], inter.request_output_tokens[lo:hi]
        assert inp.mean() == pytest.approx(mean_in, rel=0.05) and np.quantile(inp, 0.95) == pytest.approx(p95_in, rel=0.05)
        assert out.mean() == pytest.approx(mean_out, rel=0.05) and np.quantile(out, 0.95) == pytest.approx(p95_out, rel=0.05)
    # the per-tick means the fluid engine serves are those of the tick's own requests
    tick = 700
    lo, hi = inter.first[tick], inter.first[tick] + inter.count[tick]
    assert inter.input_tokens[tick] == pytest.approx(inter.request_input_tokens[lo:hi].mean())
    assert np.all(np.diff(inter.request_arrival_s) >= 0)
    assert np.all(inter.request_arrival_s[lo:hi] // 1.0 == tick)


def test_rate_trace_with_only_means_gets_the_documented_default_spread(tmp_path: pathlib.Path) -> None:
    trace = _rates(tmp_path, "start_s,duration_s,rate_rps,input_tokens,output_tokens\n0,3600,50,300,80\n")
    inter = build_arrivals(trace, seed=2).classes["interactive"]
    ratio_in, ratio_out = DEFAULT_P95_OVER_MEAN
    assert np.quantile(inter.request_input_tokens, 0.95) == pytest.approx(ratio_in * 300, rel=0.05)
    assert np.quantile(inter.request_output_tokens, 0.95) == pytest.approx(ratio_out * 80, rel=0.05)
    assert inter.request_input_tokens.mean() == pytest.approx(300, rel=0.03)


def test_rate_trace_too_large_for_per_request_arrivals_keeps_tick_cohorts(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traces, "PER_REQUEST_MAX", 1000)
    trace = _rates(tmp_path, "start_s,duration_s,rate_rps,input_tokens,output_tokens\n0,600,50,300,80\n")
    inter = build_arrivals(trace, seed=2).classes["interactive"]
    assert inter.request_arrival_s is None
    assert inter.total == pytest.approx(30000, rel=0.05)
    assert set(inter.input_tokens[inter.count > 0]) == {300.0}


@pytest.mark.parametrize(("ratio", "sigma"), [(1.0, 0.0), (0.5, 0.0), (2.1, 0.5396), (3.5, 1.1976), (10.0, Z95)])
def test_lognormal_fit_from_mean_and_p95(ratio: float, sigma: float) -> None:
    fitted = float(lognormal_sigma(np.array([100.0]), np.array([100.0 * ratio]), 3.5)[0])
    assert fitted == pytest.approx(sigma, abs=1e-3)
    if 0 < sigma < Z95:
        # the lognormal with that sigma and mean 100 has that p95
        mu = np.log(100.0) - fitted**2 / 2
        assert np.exp(mu + Z95 * fitted) == pytest.approx(100.0 * ratio, rel=1e-9)


def test_slice_of_a_request_trace_keeps_the_window_rebased(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "req.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(f"{t},{t + 1},5" for t in range(100)) + "\n")
    part = load_trace(path).slice(30.0, 20.0)
    assert list(part.start_s) == [float(t) for t in range(20)]
    assert list(part.input_tokens) == [float(t + 31) for t in range(20)]
    assert len(load_trace(path).slice(90.0).start_s) == 10


def test_slice_of_a_rate_trace_clips_the_windows(tmp_path: pathlib.Path) -> None:
    trace = _rates(tmp_path, "start_s,duration_s,rate_rps,input_tokens,output_tokens,iat_cv,input_p95,output_p95\n"
                             "0,600,5,100,10,1,300,20\n600,600,50,200,20,2,,\n1200,600,3,100,10,1,,\n")
    part = trace.slice(900.0, 600.0)
    assert list(part.start_s) == [0.0, 300.0]
    assert list(part.duration_s) == [300.0, 300.0]
    assert list(part.rate_rps) == [50.0, 3.0]
    assert part.span_s == 600.0
    assert np.isnan(part.input_p95).all()
    assert trace.slice(0, 600).input_p95[0] == 300.0


@pytest.mark.parametrize(("start_s", "duration_s"), [(5000.0, None), (0.0, 0.0), (-1.0, 10.0)])
def test_empty_or_bad_slices_are_trace_errors(tmp_path: pathlib.Path, start_s: float, duration_s: float | None) -> None:
    trace = _rates(tmp_path, "start_s,duration_s,rate_rps,input_tokens,output_tokens\n0,600,5,100,10\n")
    with pytest.raises(TraceError):
        trace.slice(start_s, duration_s)
