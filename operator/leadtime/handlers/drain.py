"""Just before a pool scales down: set pod-deletion-cost on its pods from their in-flight requests.

The I/O around the pure `leadtime.k8s.deletion_cost`: one Prometheus query for the pool's per-pod load,
one list of the pool's own pods, one patch per pod whose cost changed. Run only on a scale-down tick,
so a steady pool is never patched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from leadtime.k8s.deletion_cost import cost_patches, deletion_costs

log = logging.getLogger("leadtime.operator")

# A pod's in-flight requests as vLLM exports them; `pod` is the label Prometheus' Kubernetes service
# discovery (and PodMonitor/ServiceMonitor) puts on every scraped pod.
IN_FLIGHT_BY_POD_QUERY = (
    'sum by (pod) ({{__name__=~"vllm:num_requests_running|vllm:num_requests_waiting",'
    'namespace="{namespace}",model_deployment="{name}",pool="{pool}"}})'
)
# The scale-down must not wait on a slow Prometheus: costs are an optimisation, the scale is the decision.
QUERY_TIMEOUT_S = 3.0


class PodCluster(Protocol):
    def pool_pods(self, md: Mapping[str, Any], pool: str) -> list[Mapping[str, Any]]: ...
    def annotate_deletion_costs(self, md: Mapping[str, Any], values: Mapping[str, str]) -> None: ...


InFlightReader = Callable[[str, str], dict[str, float]]  # (prometheus url, query) -> pod -> in-flight


def in_flight_query(namespace: str, name: str, pool: str) -> str:
    return IN_FLIGHT_BY_POD_QUERY.format(namespace=namespace, name=name, pool=pool)


def prometheus_in_flight(url: str, query: str) -> dict[str, float]:
    """Pod name -> value of a `sum by (pod)` instant query; series without a pod (the router's) are skipped."""
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    client = PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0), timeout=QUERY_TIMEOUT_S)
    values: dict[str, float] = {}
    for series in client.custom_query(query):
        pod = (series.get("metric") or {}).get("pod")
        value = float(series["value"][1])
        if pod and math.isfinite(value):
            values[pod] = value
    return values


def order_scale_down(
    md: Mapping[str, Any], pool: str, prometheus_url: str, *, cluster: PodCluster,
    read_in_flight: InFlightReader = prometheus_in_flight,
) -> dict[str, int]:
    """Annotate `pool`'s pods so the least busy go first; returns the costs. Never raises: a failure
    here leaves the ReplicaSet controller's own choice, and the scale-down goes ahead."""
    namespace, name = md["metadata"]["namespace"], md["metadata"]["name"]
    try:
        pods = cluster.pool_pods(md, pool)
        in_flight: dict[str, float] = {}
        if prometheus_url:
            try:
                in_flight = read_in_flight(prometheus_url, in_flight_query(namespace, name, pool))
            except Exception as err:  # no reading: every pod gets the neutral cost
                log.warning(f"{namespace}/{name}: no per-pod load for {pool} ({err}); deletion costs neutral")
        costs = deletion_costs((p["metadata"]["name"] for p in pods), in_flight)
        cluster.annotate_deletion_costs(md, cost_patches(pods, costs))
        return costs
    except Exception as err:
        log.warning(f"{namespace}/{name}: could not set deletion costs on {pool}: {err}")
        return {}
