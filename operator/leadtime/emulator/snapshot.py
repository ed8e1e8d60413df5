"""Plain-data metric snapshots the emulator core produces and the exporter turns into Prometheus text.

Durations here are in *exported* seconds: trace seconds divided by the time scale (see docs/demo.md,
"Units"), so the operator sees one consistent clock, the wall clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

# vLLM's own bucket bounds (vllm/engine/metrics.py), so dashboards and PromQL written for vLLM work
# unchanged; e2e gets a few sub-second bounds because a 10x-compressed replay shows latencies of 0.1 s.
TTFT_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
E2E_BUCKETS_S: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)


@dataclass
class HistogramAccumulator:
    """A cumulative histogram (Prometheus semantics): counts per upper bound, plus count and sum."""

    bounds_s: tuple[float, ...]
    bucket_counts: list[int] = field(default_factory=list)  # non-cumulative, one per bound, then +Inf
    count: int = 0
    sum_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.bucket_counts:
            self.bucket_counts = [0] * (len(self.bounds_s) + 1)

    def observe(self, value_s: float) -> None:
        self.bucket_counts[bisect.bisect_left(self.bounds_s, value_s)] += 1
        self.count += 1
        self.sum_s += value_s

    def cumulative(self) -> tuple[int, ...]:
        """Cumulative counts for each finite bound (the +Inf bucket is `count`)."""
        out, running = [], 0
        for n in self.bucket_counts[:-1]:
            running += n
            out.append(running)
        return tuple(out)

    def freeze(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds_s, self.cumulative(), self.count, self.sum_s)


@dataclass(frozen=True)
class HistogramSnapshot:
    bounds_s: tuple[float, ...]
    cumulative_counts: tuple[int, ...]
    count: int
    sum_s: float

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket, as PromQL's histogram_quantile does."""
        if self.count == 0:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0
        for bound, cumulative in zip(self.bounds_s, self.cumulative_counts, strict=True):
            if cumulative >= rank:
                in_bucket = cumulative - lower_count
                return lower_bound + (bound - lower_bound) * ((rank - lower_count) / in_bucket)
            lower_bound, lower_count = bound, cumulative
        return self.bounds_s[-1]


@dataclass(frozen=True)
class PodMetrics:
    """What one emulated replica reports, as vLLM would."""

    pod: str
    pool: str
    waiting: float  # its share of its class's queue (the queue is shared, like a router in front)
    running: int
    success_total: int
    ttft: HistogramSnapshot
    e2e: HistogramSnapshot
    draining: bool = False  # terminating: finishes its running requests, takes no new ones


@dataclass(frozen=True)
class Snapshot:
    """Everything the exporter publishes at one instant of trace time."""

    trace_s: float  # seconds since the start of the replayed trace window
    pods: tuple[PodMetrics, ...]
    unrouted_waiting: Mapping[str, int]  # pool -> requests queued at the router: no Ready pod to take them
    arrived_total: Mapping[str, int]  # request class -> requests that have arrived so far
    requeued_total: Mapping[str, int]  # pool -> requests moved off a pod that disappeared
    lost_total: Mapping[str, int]  # pool -> requests dropped (should stay 0)
    completed_total: Mapping[str, int]  # request class -> requests finished, including on removed pods
    trace_finished: bool  # every request of the window has arrived and completed
    drained_total: Mapping[str, int] = field(default_factory=dict)  # pool -> finished by a terminating pod
