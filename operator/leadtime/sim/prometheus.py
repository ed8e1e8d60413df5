"""What Prometheus serves about one service group: scraped vLLM counters, gauges and histogram buckets.

The simulated vLLM servers of a group expose `request_success_total` (completions), the SLO latency's
histogram bucket counters (over `LATENCY_BUCKETS_S`, vLLM's bounds; an observation counts when its
event happens: a TTFT at first token, an e2e at completion) and the gauges `num_requests_waiting` /
`num_requests_running`. Prometheus samples them every scrape interval; a query at decision time sees
only those samples, as the operator's default queries (`api/models.py`, DEFAULT_*_QUERY) do:

- arrival rate: `rate(request_success_total[window])`: completions, which flatten while a queue builds;
- queue depth / running: the last scrape's gauges;
- p95: `histogram_quantile(0.95, rate(bucket[window]))`.

The group's counters are one series (the sum over its pods): Prometheus computes rate() per pod and
then sums, which differs only while pods come and go within a window.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque

import numpy as np

from leadtime.policy.types import ClassObservation

# vLLM's TTFT / e2e histogram bounds (seconds); the last bucket is +Inf.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                     7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0, 240.0, 480.0, 960.0, 1920.0)
N_BUCKETS = len(LATENCY_BUCKETS_S) + 1
BUCKETS = np.asarray(LATENCY_BUCKETS_S)


def scrape_times(span_s: float, tick_s: float, interval_s: float, phase_s: float) -> np.ndarray:
    """Scrape instants over a run: `phase_s + k * interval_s`, each taken at the first tick at or after it."""
    n = int(math.floor(max(0.0, span_s - phase_s) / interval_s)) + 1
    wanted = phase_s + interval_s * np.arange(n)
    return np.unique(np.ceil(wanted / tick_s - 1e-9) * tick_s)


def extrapolated_rate(times: list[float], values: list[float] | np.ndarray, range_start_s: float,
                      range_end_s: float, window_s: float) -> float | np.ndarray | None:
    """Prometheus' rate() of counter samples inside (range_start, range_end]; None below two samples.

    A port of `extrapolatedRate` (prometheus/prometheus, promql/functions.go) for counters: the increase
    from the first to the last sample, extrapolated to the range's edges when they lie within 1.1
    average sample spacings (else by half a spacing), never to below a counter's zero. `values` may be
    a list of scalars or of numpy arrays (one sample of many series, e.g. histogram buckets). Counter
    resets are not handled: a simulated counter never resets.
    """
    if len(times) < 2:
        return None
    first_t, last_t = times[0], times[-1]
    first, increase = values[0], values[-1] - values[0]
    sampled_s = last_t - first_t
    average_s = sampled_s / (len(times) - 1)
    threshold_s = average_s * 1.1
    to_start_s = first_t - range_start_s
    to_end_s = range_end_s - last_t
    if to_start_s >= threshold_s:
        to_start_s = average_s / 2.0
    if to_end_s >= threshold_s:
        to_end_s = average_s / 2.0
    if isinstance(increase, np.ndarray):
        # Per series: a counter's extrapolated start may not go below zero.
        with np.errstate(divide="ignore", invalid="ignore"):
            to_zero_s = np.where(increase > 0, sampled_s * (first / np.where(increase > 0, increase, 1.0)), math.inf)
        to_start = np.minimum(to_start_s, to_zero_s)
        return increase * ((sampled_s + to_start + to_end_s) / sampled_s) / window_s
    if increase > 0 and first >= 0:
        to_start_s = min(to_start_s, sampled_s * (first / increase))
    return increase * ((sampled_s + to_start_s + to_end_s) / sampled_s) / window_s


def histogram_quantile(q: float, counts: np.ndarray) -> float | None:
    """Prometheus' histogram_quantile over non-cumulative bucket counts (last bucket is +Inf)."""
    # Plain lists: on 28 buckets, called twice per control interval, numpy's call overhead dominates.
    cumulative = list(itertools.accumulate(counts.tolist()))
    total = cumulative[-1]
    if total <= 1e-9:
        return None
    rank = q * total
    index = bisect.bisect_left(cumulative, rank)
    if index >= len(LATENCY_BUCKETS_S):
        return LATENCY_BUCKETS_S[-1]
    upper = LATENCY_BUCKETS_S[index]
    lower = LATENCY_BUCKETS_S[index - 1] if index > 0 else 0.0
    below = cumulative[index - 1] if index > 0 else 0.0
    in_bucket = cumulative[index] - below
    return lower + (upper - lower) * ((rank - below) / in_bucket if in_bucket > 0 else 1.0)


class PrometheusView:
    """One group's exposed metrics, the samples Prometheus took of them, and the queries over those."""

    def __init__(self, scrape_at_s: np.ndarray, window_s: float) -> None:
        self.scrape_at_s = scrape_at_s
        self._scrape_list = scrape_at_s.tolist()
        self.window_s = window_s
        self.next_scrape = 0  # index of the next scrape to take
        # What the servers expose now (the completions counter is passed in at each scrape).
        self.success_base = 0.0
        self.bucket_total = np.zeros(N_BUCKETS)
        # Observations whose event (first token, completion) lies after a scrape not yet taken, keyed
        # by the first scrape that sees them.
        self._pending: dict[int, np.ndarray] = {}
        # Samples: (at_s, success_total, bucket_total copy, waiting, running).
        self.samples: deque[tuple[float, float, np.ndarray, float, float]] = deque()
        self._p95_cache: tuple[float, float, float | None] | None = None
        self._observed = False  # no latency observed yet: every bucket rate is 0

    def seed(self, rate_rps: float, history_s: float) -> None:
        """Samples before the trace of a deployment already completing `rate_rps` (no latency history)."""
        # The counter has been counting for a while: far enough from zero that rate() never clamps.
        self.success_base = rate_rps * max(history_s, 3600.0)
        interval = self.scrape_at_s[1] - self.scrape_at_s[0] if len(self.scrape_at_s) > 1 else history_s
        first = self.scrape_at_s[0] if len(self.scrape_at_s) else 0.0
        t = first - interval
        before = []
        while t > -history_s - interval:
            before.append(t)
            t -= interval
        for t in reversed(before):
            self.samples.append((t, self.success_base + rate_rps * t, self.bucket_total.copy(), 0.0, 0.0))

    def observe(self, event_s: float, bucket: int, weight: float) -> None:
        """One latency observation (`weight` requests in `bucket`) whose event happens at `event_s`."""
        self._observed = True
        index = max(self.next_scrape, bisect.bisect_left(self._scrape_list, event_s))
        pending = self._pending.get(index)
        if pending is None:
            pending = self._pending[index] = np.zeros(N_BUCKETS)
        pending[bucket] += weight

    def observe_many(self, event_s: np.ndarray, values_s: np.ndarray) -> None:
        """Per-request latency observations, each counted at its own event time."""
        self._observed = True
        index = np.maximum(np.searchsorted(self.scrape_at_s, event_s), self.next_scrape)
        bucket = np.searchsorted(BUCKETS, values_s)
        lo, hi = int(index.min()), int(index.max())
        if lo == hi:
            groups = ((lo, np.bincount(bucket, minlength=N_BUCKETS)),)
        else:
            flat = np.bincount((index - lo) * N_BUCKETS + bucket, minlength=(hi - lo + 1) * N_BUCKETS)
            table = flat.reshape(hi - lo + 1, N_BUCKETS)
            groups = ((lo + i, table[i]) for i in np.flatnonzero(table.any(axis=1)))
        for i, counts in groups:
            pending = self._pending.get(i)
            if pending is None:
                self._pending[i] = counts.astype(float)
            else:
                pending += counts

    def scrape(self, now_s: float, completed: float, waiting: float, running: float) -> None:
        """Prometheus takes the scheduled sample at `now_s` (a tick at or after the scrape instant)."""
        pending = self._pending.pop(self.next_scrape, None)
        if pending is not None:
            self.bucket_total += pending
        self.next_scrape += 1
        self.samples.append((now_s, self.success_base + completed, self.bucket_total.copy(), waiting, running))
        self._trim(now_s)

    def _trim(self, now_s: float) -> None:
        # Decisions run forward in time: a sample at or before now - window is outside every later range.
        start = now_s - self.window_s
        while self.samples and self.samples[0][0] <= start:
            self.samples.popleft()

    def query(self, now_s: float) -> tuple[ClassObservation, float | None]:
        """The default queries evaluated at `now_s`, and the newest sample's age (None: no sample yet)."""
        self._trim(now_s)
        samples = self.samples
        if not samples:
            return ClassObservation(), None
        first, last = samples[0], samples[-1]
        if len(samples) < 2:
            return ClassObservation(queue_depth=last[3], running=last[4]), now_s - last[0]
        start_s = now_s - self.window_s
        # rate() by extrapolated_rate, inlined: it runs at every decision.
        sampled_s = last[0] - first[0]
        average_s = sampled_s / (len(samples) - 1)
        to_start_s = first[0] - start_s
        to_end_s = now_s - last[0]
        if to_start_s >= average_s * 1.1:
            to_start_s = average_s / 2.0
        if to_end_s >= average_s * 1.1:
            to_end_s = average_s / 2.0
        increase = last[1] - first[1]
        if increase > 0 and first[1] >= 0:
            to_start_s = min(to_start_s, sampled_s * (first[1] / increase))
        rate = increase * ((sampled_s + to_start_s + to_end_s) / sampled_s) / self.window_s
        return ClassObservation(
            arrival_rate_rps=max(0.0, rate),
            queue_depth=last[3],
            running=last[4],
            p95_latency_s=self._p95(start_s, now_s),
        ), now_s - last[0]

    def _p95(self, start_s: float, now_s: float) -> float | None:
        if not self._observed:
            return None
        samples = self.samples
        first_t, last_t = samples[0][0], samples[-1][0]
        # The same samples (keyed by the first and last one in range) give the same quantile unless a
        # bucket's extrapolation is clamped at its zero, which then depends on the query time.
        cached = self._p95_cache
        if cached is not None and cached[0] == first_t and cached[1] == last_t:
            return cached[2]
        first, last = samples[0][2], samples[-1][2]
        increase = last - first
        grew = increase > 0
        if not grew.any():
            self._p95_cache = (first_t, last_t, None)
            return None
        # A bucket clamps when its extrapolated zero lies within 1.1 average spacings of its first sample.
        if bool((first[grew] < increase[grew] * (1.1 / (len(samples) - 1))).any()):
            rates = extrapolated_rate([s[0] for s in samples], [s[2] for s in samples], start_s, now_s,
                                      self.window_s)
            return histogram_quantile(0.95, np.asarray(rates))
        p95 = histogram_quantile(0.95, increase)
        self._p95_cache = (first_t, last_t, p95)
        return p95
