"""The operator's own Prometheus metrics (prometheus_client), served on its own small HTTP server."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DECISIONS = Counter(
    "leadtime_decisions_total", "Control ticks that ran the policy.", ["namespace", "name", "held"]
)
SCALES = Counter(
    "leadtime_scale_operations_total", "Deployment scale changes applied (or, in shadow mode, not applied).",
    ["namespace", "name", "pool", "direction"],
)
RECONCILE_DURATION = Histogram(
    "leadtime_reconcile_duration_seconds", "Wall time of one control tick (metrics, pods, decide, apply).",
    ["namespace", "name"],
    # Ticks are dominated by a handful of HTTP calls: tens of ms normally, seconds when a backend hangs.
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter("leadtime_errors_total", "Ticks or handlers that failed, by kind.", ["namespace", "name", "kind"])
DESIRED_REPLICAS = Gauge(
    "leadtime_desired_replicas", "Replicas the policy last asked for, per pool.", ["namespace", "name", "pool"]
)
METRICS_AVAILABLE = Gauge(
    "leadtime_metrics_available", "1 when the last tick could read the ModelDeployment's metrics.", ["namespace", "name"]
)


def serve(port: int, address: str = "127.0.0.1") -> None:
    """Serve /metrics on a daemon thread; port 0 turns it off."""
    if port:
        start_http_server(port, addr=address)


def forget(namespace: str, name: str, pools: tuple[str, ...]) -> None:
    """Drop a deleted ModelDeployment's gauges so dashboards do not show ghosts."""
    for pool in pools:
        try:
            DESIRED_REPLICAS.remove(namespace, name, pool)
        except KeyError:
            pass
    try:
        METRICS_AVAILABLE.remove(namespace, name)
    except KeyError:
        pass
