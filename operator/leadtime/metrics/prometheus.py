"""Read an Observation from Prometheus with prometheus-api-client (instant queries)."""

from __future__ import annotations

import math

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from leadtime.metrics.promql import ClassQueries, Queries
from leadtime.metrics.source import (
    REASON_NO_DATA,
    REASON_NOT_A_NUMBER,
    REASON_QUERY_ERROR,
    REASON_STALE,
    REASON_UNREACHABLE,
    MetricsReading,
)
from leadtime.policy.types import ClassObservation, Observation

# A control tick must not stall on a dead Prometheus: one attempt, short timeout, the next tick retries.
DEFAULT_TIMEOUT_S = 3.0
# Samples older than this are not "now". Prometheus scrapes every 5-15 s, so 60 s means several missed
# scrapes in a row; a single slow scrape does not trip it.
DEFAULT_STALE_AFTER_S = 60.0


class QueryRejected(Exception):
    """Prometheus answered but refused the query (HTTP 400/422: a PromQL error)."""


class PrometheusSource:
    """A MetricsSource backed by one Prometheus server."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, stale_after_s: float = DEFAULT_STALE_AFTER_S):
        self.url = url
        self.stale_after_s = stale_after_s
        self._client = PrometheusConnect(
            url=url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_s
        )

    def _scalar(self, query: str) -> float | None:
        """Sum of the query's result: None when empty; NaN passes through so the caller can tell."""
        try:
            result = self._client.custom_query(query)
        except PrometheusApiClientException as err:
            if "Status Code 400" in str(err) or "Status Code 422" in str(err):
                raise QueryRejected(f"{query}: {_short(str(err))}") from err
            raise
        if not result:
            return None
        values = [float(series["value"][1]) for series in result if "value" in series]
        if not values:
            return None
        return math.fsum(values)

    def _read_class(self, queries: ClassQueries) -> tuple[ClassObservation, float | None]:
        queue_depth = self._scalar(queries.queue_depth)
        obs = ClassObservation(
            arrival_rate_rps=_finite(self._scalar(queries.arrival_rate)),
            queue_depth=_finite(queue_depth),
            running=_finite(self._scalar(queries.running)),
            # histogram_quantile over an empty window is NaN: no requests finished, latency unknown.
            p95_latency_s=_finite(self._scalar(queries.p95_latency)),
        )
        return obs, queue_depth

    def read(self, queries: Queries, now_s: float) -> MetricsReading:
        try:
            interactive, raw_queue = self._read_class(queries.interactive)
            batch, _ = self._read_class(queries.batch)
            stale_s = self._scalar(queries.freshness)
        except QueryRejected as err:
            return _unavailable(now_s, REASON_QUERY_ERROR, f"Prometheus rejected a query: {err}")
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError) as err:
            return _unavailable(now_s, REASON_UNREACHABLE, f"{self.url}: {_short(str(err))}")

        # The interactive queue depth is the signal the policy cannot do without.
        if raw_queue is None:
            return _unavailable(now_s, REASON_NO_DATA, "no queue-depth series for the interactive pool")
        if math.isnan(raw_queue):
            return _unavailable(now_s, REASON_NOT_A_NUMBER, "interactive queue depth is NaN")
        stale_s = 0.0 if stale_s is None or math.isnan(stale_s) else max(0.0, stale_s)
        if stale_s > self.stale_after_s:
            return _unavailable(
                now_s, REASON_STALE, f"newest sample is {stale_s:.0f} s old (limit {self.stale_after_s:.0f} s)", stale_s
            )
        return MetricsReading(
            Observation(at_s=now_s, interactive=interactive, batch=batch, available=True, stale_s=stale_s),
            message=f"read {self.url}",
        )


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def _unavailable(now_s: float, reason: str, message: str, stale_s: float = 0.0) -> MetricsReading:
    return MetricsReading(Observation(at_s=now_s, available=False, stale_s=stale_s), reason=reason, message=message)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
