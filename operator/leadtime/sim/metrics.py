"""Run metrics: GPU-hours and cost, SLO attainment per 1-minute window and per request, p95, idleness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from leadtime.sim.traces import Arrivals


@dataclass(frozen=True)
class RunMetrics:
    gpu_hours: float
    cost_usd: float
    slo_window_attainment: float  # share of windows with traffic whose p95 meets the target
    slo_request_attainment: float  # share of requests within the target
    p95_latency_s: float
    scale_events: int
    idle_gpu_share: float  # billed GPU time spent starting or with nothing running
    dropped: float
    requests: float  # every request the trace offered: served, still queued at the end, or dropped
    requeued: float
    windows: int
    # Runs with batch traffic: the batch pools' cost, batch requests dropped (never served) and those
    # that finished (or were still waiting at the end) beyond the batch pool's deadline.
    batch_cost_usd: float | None = None
    batch_lost: float | None = None
    batch_deadline_missed: float | None = None
    batch_ondemand_cost_usd: float | None = None  # the same policy with the batch pool on on-demand, no preemptions
    starting_gpu_share: float = 0.0  # the part of idle_gpu_share billed while replicas start
    unserved: float = 0.0  # requests not finished at the end (queued, running or draining)
    # per service group: (requests, input tokens, output tokens) of those, for the bound's per-run floor
    unserved_mix: dict[str, tuple[float, float, float]] | None = None
    window_start_s: np.ndarray | None = None  # per window with traffic (plots only, not in JSON)
    window_p95_s: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        batch = {} if self.batch_cost_usd is None else {
            "batch_cost_usd": round(self.batch_cost_usd, 2),
            "batch_lost": int(round(self.batch_lost or 0.0)),
            "batch_deadline_missed": int(round(self.batch_deadline_missed or 0.0)),
            "batch_ondemand_cost_usd": (None if self.batch_ondemand_cost_usd is None
                                        else round(self.batch_ondemand_cost_usd, 2)),
        }
        return {
            "gpu_hours": round(self.gpu_hours, 4),
            "cost_usd": round(self.cost_usd, 2),
            "slo_window_attainment": round(self.slo_window_attainment, 5),
            "slo_request_attainment": round(self.slo_request_attainment, 5),
            "p95_latency_s": round(self.p95_latency_s, 4),
            "scale_events": self.scale_events,
            "idle_gpu_share": round(self.idle_gpu_share, 4),
            "starting_gpu_share": round(self.starting_gpu_share, 4),
            "unserved": round(self.unserved, 1),
            "dropped": int(round(self.dropped)),
            "requests": int(round(self.requests)),
            # null when no request met the target (JSON has no infinity)
            "gpu_seconds_per_request_in_slo": (round(self.gpu_seconds_per_request_in_slo, 4)
                                               if np.isfinite(self.gpu_seconds_per_request_in_slo) else None),
            **batch,
        }

    @property
    def gpu_seconds_per_request_in_slo(self) -> float:
        """What the GPUs cost per request served within its latency target (inf if none was)."""
        good = self.requests * self.slo_request_attainment
        return self.gpu_hours * 3600.0 / good if good > 0 else float("inf")


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    if len(values) == 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(index, len(values) - 1)])


def window_p95(arrival_s: np.ndarray, weights: np.ndarray, latency_s: np.ndarray, window_s: float,
               with_starts: bool = False):  # noqa: ANN201
    """Weighted p95 latency of each window (by arrival time) that has traffic."""
    window = np.floor(arrival_s / window_s).astype(np.int64)
    order = np.lexsort((latency_s, window))
    window, weights, latency_s = window[order], weights[order], latency_s[order]
    cumulative = np.cumsum(weights)
    ids, starts = np.unique(window, return_index=True)
    ends = np.append(starts[1:], len(window))
    before = np.where(starts > 0, cumulative[starts - 1], 0.0)
    totals = cumulative[ends - 1] - before
    targets = before + 0.95 * totals
    index = np.searchsorted(cumulative, targets - 1e-9)
    index = np.minimum(np.maximum(index, starts), ends - 1)
    if with_starts:
        return ids[totals > 0] * window_s, latency_s[index][totals > 0]
    return latency_s[index][totals > 0]


def compute_metrics(
    *,
    arrivals: Arrivals,
    per_request: dict[str, tuple[np.ndarray, np.ndarray]],
    cohorts: list[tuple[float, float, float, float]],
    slo_index: int,
    slo_p95_s: float,
    slo_window_s: float,
    billed_gpu_s: dict[str, float],
    prices: dict[str, float],
    idle_gpu_s: float,
    scale_events: int,
    dropped: float,
    requeued: float,
    dropped_at: list[tuple[float, float]] | None = None,
    batch: tuple[float, float] | None = None,
    starting_gpu_s: float = 0.0,
    unserved: dict[str, tuple[float, float, float]] | None = None,
) -> RunMetrics:
    """`dropped_at`: (arrival_s, count) of requests dropped at the queue limit; each is a request beyond
    the SLO, in request attainment and in the window it arrived in (a dropped request was not served in
    time), so a run that drops requests never reports 100 %. `batch`: (lost, deadline missed) batch
    requests, for runs with batch traffic."""
    at_parts, weight_parts, latency_parts = [], [], []
    for name, latencies in per_request.items():
        values = latencies[slo_index]
        done = ~np.isnan(values)
        at_parts.append(arrivals.classes[name].request_arrival_s[done])
        weight_parts.append(np.ones(int(done.sum())))
        latency_parts.append(values[done])
    if cohorts:
        table = np.asarray(cohorts, dtype=float)
        at_parts.append(table[:, 0])
        weight_parts.append(table[:, 1])
        latency_parts.append(table[:, 2 + slo_index])
    if dropped_at:
        table = np.asarray(dropped_at, dtype=float)
        at_parts.append(table[:, 0])
        weight_parts.append(table[:, 1])
        latency_parts.append(np.full(len(table), np.inf))
    at = np.concatenate(at_parts) if at_parts else np.zeros(0)
    weights = np.concatenate(weight_parts) if weight_parts else np.zeros(0)
    latency = np.concatenate(latency_parts) if latency_parts else np.zeros(0)
    total_weight = float(weights.sum())
    starts, per_window = window_p95(at, weights, latency, slo_window_s, True) if len(at) else (np.zeros(0), np.zeros(0))
    billed = sum(billed_gpu_s.values())
    served = np.isfinite(latency)
    return RunMetrics(
        gpu_hours=billed / 3600.0,
        cost_usd=sum(billed_gpu_s[p] / 3600.0 * prices[p] for p in billed_gpu_s),
        slo_window_attainment=float((per_window <= slo_p95_s).mean()) if len(per_window) else 1.0,
        slo_request_attainment=float(weights[latency <= slo_p95_s].sum() / total_weight) if total_weight else 1.0,
        p95_latency_s=weighted_quantile(latency[served], weights[served], 0.95),  # of requests served
        scale_events=scale_events,
        idle_gpu_share=idle_gpu_s / billed if billed > 0 else 0.0,
        starting_gpu_share=starting_gpu_s / billed if billed > 0 else 0.0,
        unserved=sum(mix[0] for mix in unserved.values()) if unserved else 0.0,
        unserved_mix=unserved,
        dropped=dropped,
        requests=total_weight,
        requeued=requeued,
        windows=len(per_window),
        batch_cost_usd=(sum(billed_gpu_s[p] / 3600.0 * prices[p] for p in billed_gpu_s if p != "interactive")
                        if batch is not None else None),
        batch_lost=batch[0] if batch is not None else None,
        batch_deadline_missed=batch[1] if batch is not None else None,
        window_start_s=starts,
        window_p95_s=per_window,
    )
