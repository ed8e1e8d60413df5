"""`make bench`'s short form: one scenario through the whole pipeline (sweeps, references, leadtime,
the report), so the long bench does not rot between its runs."""

from __future__ import annotations

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import run as bench  # noqa: E402

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def quick_doc(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(bench, "ROOT", tmp_path_factory.mktemp("bench"))
    return bench.run_scenario_quick()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_quick_bench_runs_every_baseline_sweep_the_references_and_leadtime(quick_doc):
    policies = {run["policy"] for run in quick_doc["runs"]}
    assert policies == {"leadtime", "hpa", "keda-waiting", "hpa-rps", "kpa", "clairvoyant", "static", "bound"}
    # pass 2 tuned the behaviour knobs of every HPA variant around its best targets
    for name in ("hpa", "keda-waiting", "hpa-rps"):
        windows = {run["params"].get("scale_down_stabilization_s") for run in quick_doc["runs"] if run["policy"] == name}
        assert {0.0, 600.0} <= windows


def test_no_run_is_below_its_floor_and_finished_runs_not_below_the_bound(quick_doc):
    bound = next(run for run in quick_doc["runs"] if run["policy"] == "bound")
    runs = [run for run in quick_doc["runs"] if run["policy"] != "bound" and run["dropped"] == 0]
    assert len(runs) > 100
    for run in runs:
        assert bound["gpu_hours"] >= run["floor_gpu_hours"] > 0
        assert run["gpu_hours"] >= run["floor_gpu_hours"], run
        if run["unserved"] < 1:
            assert run["x_bound"] >= 1.0, run


def test_the_report_states_the_verdict_for_each_prior_error(quick_doc):
    text = bench.render([quick_doc], None)
    rows = [line for line in text.splitlines() if line.startswith(f"| {quick_doc['id']} | 1 |")]
    assert len(rows) == 1
    summary = bench.summarise(quick_doc)["rows"][0]
    assert ("**yes**" in rows[0]) == bool(summary["dominating"])
    assert "Not dominated (the Must) in" in text
