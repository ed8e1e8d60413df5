"""The interface every metrics source implements, and what a read returns when it fails.

Defined behaviour on failure (as KEDA does): a source never raises for an unreachable backend, an
empty result, NaN or stale data. It returns a `MetricsReading` whose observation has `available=False`
and a CamelCase reason; the handlers hold replicas and set MetricsAvailable=False from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from leadtime.metrics.promql import Queries
from leadtime.policy.types import Observation

# Reasons a reading is unavailable; they become the MetricsAvailable condition's reason and match
# the constants in leadtime.api.conditions.
REASON_OK = "MetricsRead"
REASON_UNREACHABLE = "PrometheusUnreachable"
REASON_QUERY_ERROR = "QueryFailed"  # Prometheus rejected a query: a spec problem, also sets Degraded
REASON_NO_DATA = "NoData"
REASON_NOT_A_NUMBER = "NotANumber"
REASON_STALE = "MetricsStale"


@dataclass(frozen=True)
class MetricsReading:
    observation: Observation
    reason: str = REASON_OK
    message: str = ""

    @property
    def query_error(self) -> bool:
        """True when the spec's queries are at fault rather than the backend: the operator reports Degraded."""
        return self.reason == REASON_QUERY_ERROR


class MetricsSource(Protocol):
    def read(self, queries: Queries, now_s: float) -> MetricsReading: ...
