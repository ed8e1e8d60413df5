"""What Prometheus would scrape from the emulator, and which pods it considers Ready."""

from __future__ import annotations

from leadtime.emulator.core import EmulatorCore
from leadtime.emulator.exporter import SnapshotCollector
from leadtime.emulator.pods import ready_pods, terminating_pods
from leadtime.emulator.snapshot import HistogramAccumulator
from leadtime.replica import Request, get_profile
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def scrape(core: EmulatorCore) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(core.snapshot, "ns1", "llama"))
    text = generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def labels(pool: str, pod: str, **extra: str) -> tuple:
    return tuple(sorted({"namespace": "ns1", "model_deployment": "llama", "pool": pool, "pod": pod, **extra}.items()))


def test_vllm_names_and_per_pod_labels():
    requests = [Request(arrival_s=0.1 * i, input_tokens=500, output_tokens=50, request_id=i) for i in range(20)]
    requests.append(Request(arrival_s=0.5, input_tokens=500, output_tokens=50, request_class="batch", request_id=99))
    core = EmulatorCore(requests, get_profile("llama-8b-h100"), time_scale=10.0)
    core.sync_pods({"llama-7f-x": "interactive"})
    core.advance_to(30.0)
    s = scrape(core)
    assert s[("vllm:request_success_total", labels("interactive", "llama-7f-x"))] == 20
    assert s[("vllm:num_requests_running", labels("interactive", "llama-7f-x"))] == 0
    assert s[("vllm:time_to_first_token_seconds_count", labels("interactive", "llama-7f-x"))] == 20
    assert s[("vllm:e2e_request_latency_seconds_bucket", labels("interactive", "llama-7f-x", le="+Inf"))] == 20
    # The batch request has no pod to go to: it waits at the router, visible under its pool.
    assert s[("vllm:num_requests_waiting", labels("batch", ""))] == 1
    assert s[("vllm:num_requests_waiting", labels("interactive", "llama-7f-x"))] == 0
    arrived = ("leadtime_emulator_requests_arrived_total", tuple(sorted(
        {"namespace": "ns1", "model_deployment": "llama", "pool": "batch", "request_class": "batch"}.items())))
    assert s[arrived] == 1
    pool_labels = tuple(sorted({"namespace": "ns1", "model_deployment": "llama", "pool": "interactive"}.items()))
    assert s[("leadtime_emulator_requests_lost_total", pool_labels)] == 0
    assert s[("leadtime_emulator_requests_requeued_total", pool_labels)] == 0


def test_removed_pod_disappears_from_the_scrape():
    core = EmulatorCore([Request(arrival_s=0.0, input_tokens=10, output_tokens=5, request_id=0)], get_profile("llama-8b-h100"))
    core.sync_pods({"a": "interactive", "b": "interactive"})
    core.sync_pods({"a": "interactive"})
    pods = {dict(k[1]).get("pod") for k in scrape(core) if k[0] == "vllm:num_requests_running"}
    assert pods == {"a"}


def test_histogram_buckets_and_quantile_follow_prometheus_semantics():
    h = HistogramAccumulator((0.1, 0.5, 1.0))
    for v in (0.05, 0.1, 0.3, 0.7, 2.0):
        h.observe(v)
    snap = h.freeze()
    assert snap.cumulative_counts == (2, 3, 4) and snap.count == 5  # le is inclusive: 0.1 falls in le=0.1
    assert snap.quantile(0.5) == 0.1 + (0.5 - 0.1) * (2.5 - 2) / 1


def pod(name: str, pool: str | None, ready: str, deleting: bool = False) -> dict:
    meta: dict = {"name": name, "labels": {"serving.leadtime.dev/model": "llama"}}
    if pool:
        meta["labels"]["serving.leadtime.dev/pool"] = pool
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_only_ready_labelled_live_pods_count():
    pods = [
        pod("a", "interactive", "True"),
        pod("b", "batch", "True"),
        pod("c", "interactive", "False"),  # still starting (cold start)
        pod("d", "interactive", "True", deleting=True),  # terminating: a Service drops it
        pod("e", None, "True"),  # no pool label
        pod("f", "gpu-heaven", "True"),  # unknown pool
        {"metadata": {"name": "g", "labels": {"serving.leadtime.dev/pool": "batch-ondemand"}}, "status": {}},
    ]
    assert ready_pods(pods) == {"a": "interactive", "b": "batch"}


def test_terminating_labelled_pods_are_listed_as_draining_whatever_their_readiness():
    pods = [
        pod("a", "interactive", "True"),
        pod("d", "interactive", "True", deleting=True),
        pod("e", "batch", "False", deleting=True),
        pod("f", None, "True", deleting=True),  # no pool label: not ours to model
    ]
    assert terminating_pods(pods) == {"d": "interactive", "e": "batch"}


def test_a_draining_pod_exports_its_running_requests_no_waiting_and_the_drained_count():
    requests = [Request(arrival_s=0.1 * i, input_tokens=500, output_tokens=400, request_id=i) for i in range(8)]
    core = EmulatorCore(requests, get_profile("llama-8b-h100"))
    core.sync_pods({"a": "interactive", "b": "interactive"})
    core.advance_to(1.0)
    core.sync_pods({"a": "interactive"}, {"b": "interactive"})
    s = scrape(core)
    assert s[("leadtime_emulator_pod_draining", labels("interactive", "b"))] == 1
    assert s[("leadtime_emulator_pod_draining", labels("interactive", "a"))] == 0
    assert s[("vllm:num_requests_running", labels("interactive", "b"))] == 4
    assert s[("vllm:num_requests_waiting", labels("interactive", "b"))] == 0
    core.advance_to(60.0)
    pool_labels = tuple(sorted({"namespace": "ns1", "model_deployment": "llama", "pool": "interactive"}.items()))
    assert scrape(core)[("leadtime_emulator_requests_drained_total", pool_labels)] == 4


# What Prometheus 2.x sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def test_http_scrape_keeps_vllm_names_whatever_the_scraper_accepts():
    import urllib.request

    from leadtime.emulator.exporter import serve_metrics

    core = EmulatorCore([Request(arrival_s=0.0, input_tokens=10, output_tokens=5, request_id=0)], get_profile("llama-8b-h100"))
    core.sync_pods({"a": "interactive"})
    core.advance_to(5.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(core.snapshot, "ns1", "llama"))
    server = serve_metrics("127.0.0.1", 0, registry)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/metrics",
                                         headers={"Accept": PROMETHEUS_ACCEPT})
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    finally:
        server.shutdown()
        server.server_close()
    assert 'vllm:request_success_total{model_deployment="llama",namespace="ns1",pod="a",pool="interactive"} 1.0' in text
    assert "vllm_num_requests" not in text
