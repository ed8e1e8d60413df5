"""Turns emulator snapshots into Prometheus metric families with vLLM's names (a prometheus_client Collector).

A custom collector rather than global Gauge/Histogram objects: when a pod disappears its series must
disappear with it, and each scrape must show one consistent instant of the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from leadtime.emulator.snapshot import HistogramSnapshot, Snapshot

POD_LABELS = ("namespace", "model_deployment", "pool", "pod")
POOL_LABELS = ("namespace", "model_deployment", "pool")
CLASS_LABELS = ("namespace", "model_deployment", "pool", "request_class")

# Requests waiting at the router (no Ready pod) are reported under the class's first pool with an empty
# pod label: `sum by (pool)` of the waiting gauge then includes them, so a pool scaled to zero still shows
# its backlog — which is what lets an autoscaler bring it back from zero.
ROUTER_POD = ""

# Which pool a request class's arrivals are attributed to.
CLASS_POOL = {"interactive": "interactive", "batch": "batch"}


def _histogram(family: HistogramMetricFamily, labels: list[str], h: HistogramSnapshot) -> None:
    buckets = [(_bound(b), float(c)) for b, c in zip(h.bounds_s, h.cumulative_counts, strict=True)]
    buckets.append(("+Inf", float(h.count)))
    family.add_metric(labels, buckets, h.sum_s)


def _bound(bound: float) -> str:
    return repr(float(bound))


def families(snapshot: Snapshot, namespace: str, model_deployment: str, *, router: bool = True) -> list[Metric]:
    """All metric families for one snapshot; `router=False` leaves out the router queue (one real server)."""
    waiting = GaugeMetricFamily(
        "vllm:num_requests_waiting", "Requests waiting to be processed.", labels=POD_LABELS
    )
    running = GaugeMetricFamily(
        "vllm:num_requests_running", "Requests currently in the batch.", labels=POD_LABELS
    )
    success = CounterMetricFamily(
        "vllm:request_success", "Requests finished successfully.", labels=POD_LABELS
    )
    ttft = HistogramMetricFamily(
        "vllm:time_to_first_token_seconds", "Time to first token.", labels=POD_LABELS
    )
    e2e = HistogramMetricFamily(
        "vllm:e2e_request_latency_seconds", "End-to-end request latency.", labels=POD_LABELS
    )
    for pod in snapshot.pods:
        labels = [namespace, model_deployment, pod.pool, pod.pod]
        waiting.add_metric(labels, pod.waiting)
        running.add_metric(labels, pod.running)
        success.add_metric(labels, pod.success_total)
        _histogram(ttft, labels, pod.ttft)
        _histogram(e2e, labels, pod.e2e)
    for pool, n in sorted(snapshot.unrouted_waiting.items() if router else ()):
        waiting.add_metric([namespace, model_deployment, pool, ROUTER_POD], n)

    arrived = CounterMetricFamily(
        "leadtime_emulator_requests_arrived",
        "Requests that arrived from the trace, by request class.",
        labels=CLASS_LABELS,
    )
    for request_class, n in sorted(snapshot.arrived_total.items()):
        arrived.add_metric([namespace, model_deployment, CLASS_POOL[request_class], request_class], n)
    completed = CounterMetricFamily(
        "leadtime_emulator_requests_completed",
        "Requests completed, by request class (also those served by pods since removed).",
        labels=CLASS_LABELS,
    )
    for request_class, n in sorted(snapshot.completed_total.items()):
        completed.add_metric([namespace, model_deployment, CLASS_POOL[request_class], request_class], n)
    requeued = CounterMetricFamily(
        "leadtime_emulator_requests_requeued",
        "In-flight requests moved back to the router because their pod disappeared.",
        labels=POOL_LABELS,
    )
    for pool, n in sorted(snapshot.requeued_total.items()):
        requeued.add_metric([namespace, model_deployment, pool], n)
    drained = CounterMetricFamily(
        "leadtime_emulator_requests_drained",
        "Requests finished by a terminating pod after it stopped taking new ones.",
        labels=POOL_LABELS,
    )
    for pool, n in sorted(snapshot.drained_total.items()):
        drained.add_metric([namespace, model_deployment, pool], n)
    draining = GaugeMetricFamily(
        "leadtime_emulator_pod_draining", "1 while a pod is terminating and finishes its running requests.",
        labels=POD_LABELS,
    )
    for pod in snapshot.pods:
        draining.add_metric([namespace, model_deployment, pod.pool, pod.pod], 1.0 if pod.draining else 0.0)
    lost = CounterMetricFamily(
        "leadtime_emulator_requests_lost", "Requests dropped without being served.", labels=POOL_LABELS
    )
    for pool, n in sorted(snapshot.lost_total.items()):
        lost.add_metric([namespace, model_deployment, pool], n)

    trace_time = GaugeMetricFamily(
        "leadtime_emulator_trace_time_seconds",
        "Position in the replayed trace window, in trace seconds.",
        labels=("namespace", "model_deployment"),
    )
    trace_time.add_metric([namespace, model_deployment], snapshot.trace_s)
    finished = GaugeMetricFamily(
        "leadtime_emulator_trace_finished",
        "1 once every request of the trace window has arrived and completed.",
        labels=("namespace", "model_deployment"),
    )
    finished.add_metric([namespace, model_deployment], 1.0 if snapshot.trace_finished else 0.0)
    return [waiting, running, success, ttft, e2e, arrived, completed, requeued, drained, draining, lost, trace_time,
            finished]


class SnapshotCollector(Collector):
    """Collects whatever snapshot `latest()` returns at scrape time."""

    def __init__(
        self, latest: Callable[[], Snapshot | None], namespace: str, model_deployment: str, *, router: bool = True
    ) -> None:
        self._latest = latest
        self.router = router
        self.namespace = namespace
        self.model_deployment = model_deployment

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        if snapshot is None:
            return iter(())
        return iter(families(snapshot, self.namespace, self.model_deployment, router=self.router))


# The classic text format, whatever the scraper asks for. prometheus_client answers an OpenMetrics
# Accept header (Prometheus sends one) with names escaped to underscores, `vllm_num_requests_waiting`,
# which no query written for vLLM would match; the 0.0.4 text format keeps `vllm:` names intact.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def serve_metrics(host: str, port: int, registry: CollectorRegistry) -> ThreadingHTTPServer:
    """Serve `registry` on http://host:port/metrics from a daemon thread; returns the server (shutdown())."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            return  # one line per scrape per second would drown the log

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = exposition(registry)
            self.send_response(200)
            self.send_header("Content-Type", TEXT_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
