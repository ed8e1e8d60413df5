"""The bench's scenario list: derived scales land in the 10-40 replica band; ids build scenarios."""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))

from benchmarks.scenarios import SCENARIO_IDS, SETUPS, build_scenario, spec  # noqa: E402


def test_twelve_scenarios_four_traces_three_cold_starts() -> None:
    assert len(SCENARIO_IDS) == 12
    assert {spec(i).cold_start_s for i in SCENARIO_IDS} == {30, 120, 600}
    assert {spec(i).trace for i in SCENARIO_IDS} == set(SETUPS)


@pytest.mark.parametrize("trace", sorted(SETUPS))
def test_busiest_minute_needs_10_to_40_replicas(trace: str) -> None:
    s = spec(f"{trace}@30s")
    assert 10 <= s.peak_replicas <= 40
    assert s.rate_scale == pytest.approx(25 * s.replica_capacity_rps / s.peak_rate_rps, rel=1e-3)


def test_build_by_id_uses_the_spec() -> None:
    scenario = build_scenario("azure-conv@120s")
    assert scenario.profile.cold_start.p50_s == 120
    assert scenario.config.slo_metric == "e2e" and scenario.config.slo_p95_s == 15.0
    with pytest.raises(ValueError, match="unknown scenario"):
        spec("azure-conv@2m")
