"""The demo's pure parts: the compressed ModelDeployment is valid and consistent, the table, the plot."""

from __future__ import annotations

from pathlib import Path

import yaml
from leadtime.api.convert import parse_model_deployment, to_policy_config
from leadtime.demo import (
    Sample,
    Scaling,
    arrivals_query,
    demo_manifest,
    demo_profile,
    format_row,
    plot_timeline,
    summarize,
)
from leadtime.metrics.promql import render_queries
from leadtime.replica import get_profile

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = yaml.safe_load((REPO / "examples" / "llama-8b.yaml").read_text())
SCALING = Scaling(time_scale=10.0, cold_start_trace_s=60.0, slo_trace_s=2.0, capacity_trace_rps=5.5)


def manifest(**kw) -> dict:
    return demo_manifest(EXAMPLE, name="llama-8b", namespace="leadtime-demo",
                         prometheus_url="http://127.0.0.1:19090", scaling=SCALING, **kw)


def test_demo_manifest_is_a_valid_model_deployment_on_the_compressed_clock():
    doc = manifest()
    md = parse_model_deployment(doc)  # raises on anything the CRD would reject
    config = to_policy_config(md.spec)
    assert doc["spec"]["model"]["podAnnotations"]["leadtime.dev/cold-start"] == "6000ms"
    assert config.cold_start_prior_s == 6.0
    assert config.slo_p95_s == 0.2
    assert config.replica_capacity_rps == 55.0  # 5.5 per trace second is 55 per wall second at x10
    assert config.scale_down_stabilization_s == 30
    assert doc["spec"]["controlIntervalSeconds"] == 1
    assert doc["spec"]["metrics"]["window"] == "10s"
    # 600 s of grace and a 10 s preStop sleep in trace time are 60 s and 1 s of wall time at x10
    assert md.spec.drain.termination_grace_period_seconds == 60
    assert md.spec.drain.pre_stop_sleep_seconds == 1
    assert EXAMPLE["spec"]["slo"]["p95Seconds"] == 2.0  # the example itself is untouched


def test_demo_arrival_query_renders_for_both_classes():
    queries = render_queries({**manifest()["spec"]["metrics"]["queries"], "queueDepth": "q", "running": "r",
                              "ttftP95": "t"}, namespace="ns", name="md", window="10s", slo_metric="ttft")
    assert queries.interactive.arrival_rate == (
        'sum(rate(leadtime_emulator_requests_arrived_total{namespace="ns",model_deployment="md",'
        'pool=~"interactive"}[10s]))'
    )
    assert 'pool=~"batch|batch-ondemand"' in queries.batch.arrival_rate
    assert "${pools}" in arrivals_query()


def test_demo_profile_takes_the_examples_batch_limit():
    profile = demo_profile(get_profile("llama-8b-h100"), 32)
    assert profile.max_num_seqs == 32 and profile.prefill_tokens_per_s == 20_000.0


def test_batch_variant_enables_the_batch_pool_with_scaled_deadline():
    doc = manifest(batch=True)
    md = parse_model_deployment(doc)
    assert md.spec.pools.batch.enabled
    assert md.spec.pools.batch.deadline_seconds == 360.0


def rows() -> list[Sample]:
    out = []
    for i in range(20):
        ready = 1 + i // 5
        out.append(Sample(wall_s=3.0 * i, trace_s=30.0 * i, demand_rps=5.0 + i, served_rps=5.0 + i, queue=i % 3,
                          p95_ttft_s=0.5 if i != 7 else 4.0, forecast_rps=6.0 + i,
                          ready={"interactive": ready}, starting={"interactive": 1 if i % 5 == 4 else 0},
                          desired={"interactive": ready + 1}, dollars_per_hour=3.43 * ready,
                          reason=f"forecast {6.0 + i:.1f} rps in 60 s needs {ready + 1} replicas (p95 model)"))
    return out


def test_table_row_and_summary():
    row = format_row(rows()[4])
    assert row.startswith("02:00")
    assert "1/1/2" in row and "13.72" not in row and "3.43" in row
    assert format_row(Sample(wall_s=0.0)).split()[0] == "-"
    summary = summarize(rows(), slo_trace_s=2.0)
    assert summary.windows_with_p95 == 19  # the first sample is at trace time 0, before any window
    assert summary.windows_within_slo == 18
    assert summary.max_ready == 4
    assert round(summary.gpu_hours, 3) == round(sum(1 + i // 5 for i in range(19)) * 30 / 3600, 3)


def test_timeline_png_is_written(tmp_path):
    path = tmp_path / "timeline.png"
    plot_timeline(rows(), path, slo_trace_s=2.0, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_warm_start_raises_the_floor_for_the_start_only():
    assert manifest(warm_start_replicas=4)["spec"]["replicas"]["warmFloor"] == 4
    assert manifest(warm_start_replicas=0)["spec"]["replicas"]["warmFloor"] == EXAMPLE["spec"]["replicas"]["warmFloor"]
    parse_model_deployment(manifest(warm_start_replicas=30))  # max follows, so the spec stays valid
    from leadtime.demo import initial_replicas

    assert initial_replicas(13.0, 4.9) == 3 and initial_replicas(0.0, 4.9) == 1
