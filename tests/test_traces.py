"""Trace formats and importers, on small fixtures cut from the real files' formats."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from leadtime.cli import main
from leadtime.sim.traces import TraceError, build_arrivals, load_trace

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
