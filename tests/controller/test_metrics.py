"""Metrics: PromQL rendering per class, and the Prometheus reader's defined behaviour on failure."""

from __future__ import annotations

import socket

import pytest
from leadtime.metrics.prometheus import PrometheusSource
from leadtime.metrics.promql import TemplateError, render_queries

from controller.fake_prometheus import FakePrometheus

TEMPLATES = {
    "arrivalRate": 'sum(rate(vllm:request_success_total{namespace="${namespace}",model_deployment="${name}",pool=~"${pools}"}[${window}]))',
    "queueDepth": 'sum(vllm:num_requests_waiting{namespace="${namespace}",model_deployment="${name}",pool=~"${pools}"})',
    "running": 'sum(vllm:num_requests_running{namespace="${namespace}",model_deployment="${name}",pool=~"${pools}"})',
    "ttftP95": 'histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{pool=~"${pools}"}[${window}])))',
    "e2eP95": 'histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{pool=~"${pools}"}[${window}])))',
}


def queries(slo: str = "ttft"):
    return render_queries(TEMPLATES, namespace="ml", name="llama", window="1m", slo_metric=slo)


def test_interactive_and_batch_classes_select_their_pools():
    q = queries()
    assert 'pool=~"interactive"' in q.interactive.queue_depth
    assert 'pool=~"batch|batch-ondemand"' in q.batch.queue_depth
    assert 'namespace="ml",model_deployment="llama"' in q.interactive.arrival_rate
    assert "[1m]" in q.batch.arrival_rate
    assert "time_to_first_token" in q.interactive.p95_latency
    assert "e2e_request_latency" in queries("e2e").interactive.p95_latency
    assert 'vllm:num_requests_waiting{namespace="ml", model_deployment="llama"}' in q.freshness


def test_unknown_placeholder_and_missing_template_are_template_errors():
    with pytest.raises(TemplateError, match="nmespace"):
        render_queries({**TEMPLATES, "running": "sum(x{ns='${nmespace}'})"}, namespace="a", name="b", window="1m", slo_metric="ttft")
    with pytest.raises(TemplateError, match="queueDepth"):
        render_queries({k: v for k, v in TEMPLATES.items() if k != "queueDepth"}, namespace="a", name="b", window="1m", slo_metric="ttft")


def healthy(query: str):
    batch = 'pool=~"batch|batch-ondemand"' in query
    if query.startswith("time() - max(timestamp"):
        return [({}, "4.5")]
    if "num_requests_waiting" in query:
        return [({"pool": "batch"}, "30")] if batch else [({}, "3")]
    if "num_requests_running" in query:
        return [({}, "7")] if batch else [({"pod": "a"}, "10"), ({"pod": "b"}, "6")]
    if "request_success_total" in query:
        return [({}, "0.5")] if batch else [({}, "12.5")]
    if "time_to_first_token" in query:
        return [({}, "NaN")] if batch else [({}, "0.8")]
    return []


def test_healthy_read_sums_series_per_class():
    with FakePrometheus(healthy) as prom:
        reading = PrometheusSource(prom.url).read(queries(), now_s=1000.0)
    obs = reading.observation
    assert obs.available and reading.reason == "MetricsRead"
    assert obs.at_s == 1000.0 and obs.stale_s == 4.5
    assert (obs.interactive.arrival_rate_rps, obs.interactive.queue_depth, obs.interactive.running) == (12.5, 3, 16)
    assert obs.interactive.p95_latency_s == 0.8
    assert (obs.batch.queue_depth, obs.batch.running, obs.batch.arrival_rate_rps) == (30, 7, 0.5)
    # No batch request finished in the window: latency unknown, not an outage.
    assert obs.batch.p95_latency_s is None


def test_prometheus_down_is_unavailable_not_an_exception():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reading = PrometheusSource(f"http://127.0.0.1:{port}", timeout_s=1).read(queries(), now_s=5.0)
    assert not reading.observation.available
    assert reading.reason == "PrometheusUnreachable" and not reading.query_error


def test_rejected_query_is_a_query_error():
    with FakePrometheus(lambda q: 400 if "num_requests_running" in q else healthy(q)) as prom:
        reading = PrometheusSource(prom.url).read(queries(), now_s=5.0)
    assert not reading.observation.available
    assert reading.query_error and "num_requests_running" in reading.message


def test_server_error_is_unreachable():
    with FakePrometheus(lambda q: 503) as prom:
        reading = PrometheusSource(prom.url).read(queries(), now_s=5.0)
    assert reading.reason == "PrometheusUnreachable"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda q: [] if "num_requests_waiting" in q else healthy(q), "NoData"),
        (lambda q: [({}, "NaN")] if "num_requests_waiting" in q else healthy(q), "NotANumber"),
        (lambda q: [({}, "300")] if q.startswith("time()") else healthy(q), "MetricsStale"),
    ],
)
def test_empty_nan_and_stale_queue_depth_are_unavailable(answer, reason):
    with FakePrometheus(answer) as prom:
        reading = PrometheusSource(prom.url).read(queries(), now_s=5.0)
    assert not reading.observation.available
    assert reading.reason == reason and reading.message
