"""Canonical trace formats and their expansion into per-tick arrivals for the simulator.

- request CSV: `arrival_s,input_tokens,output_tokens[,class]` — one row per request.
- rate CSV: `start_s,duration_s,rate_rps,input_tokens,output_tokens[,iat_cv][,input_p95,output_p95][,class]`
  — one row per window; arrivals are synthesised inside each window at the mean rate with gamma
  inter-arrivals of the given CV (default 1, Poisson), from a seed. Token lengths are lognormal with
  the row's mean and p95 (default p95: `DEFAULT_P95_OVER_MEAN` times the mean).

`class` is `interactive` (default) or `batch`. Files may be gzip-compressed (`.csv.gz`).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REQUEST_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")
RATE_COLUMNS = ("start_s", "duration_s", "rate_rps", "input_tokens", "output_tokens")
CLASSES = ("interactive", "batch")

# Copies of a request made by --rate-scale > 1 are shifted by up to this much so that scaling a
# trace does not turn every request into a burst of identical simultaneous ones, while the
# minute-scale shape of the trace stays.
SCALE_JITTER_S = 10.0

# Above this many arrivals per tick, a window's per-tick counts are drawn from the normal limit of the
# gamma renewal process (mean rate*tick, variance cv^2*rate*tick) instead of inter-arrival by
# inter-arrival: identical in distribution at that size, and 100x faster on multi-day traces.
EXACT_ARRIVALS_MAX_PER_TICK = 20.0

# Inter-arrival CVs above this are capped when arrivals are synthesised. ServeGen fits CVs up to ~100
# over 600-s windows; taken literally at 1-s resolution a gamma process with such a CV delivers a whole
# window's traffic in one or two single-second bursts of hundreds of thousands of requests, which no
# serving system sees. A cap of 4 keeps those windows strongly bursty (per-second count std 4x Poisson).
MAX_IAT_CV = 4.0


# When a rate trace gives only mean token lengths, its p95 is taken as this multiple of the mean: the
# ratios of the Azure LLM conversation trace (2023) itself, input p95/mean 4083/1155 = 3.5 and output
# 451/211 = 2.1 (its coding trace has 3.6 for inputs too). A lognormal with that mean and p95 has
# sigma 1.20 (inputs) and 0.54 (outputs).
DEFAULT_P95_OVER_MEAN = (3.5, 2.1)

# z-score of the 95th percentile of a standard normal.
Z95 = 1.6448536269514722

# Rate traces are synthesised request by request (each with its own drawn token lengths) while the
# whole run holds at most this many requests; above it (multi-day traces at thousands of requests/s)
# each tick is one cohort at the window's mean lengths, as the fluid engine takes it.
PER_REQUEST_MAX = 3_000_000


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class Trace:
    """A loaded trace: either per-request rows or per-window rates (numpy arrays, sorted by time)."""

    name: str
    kind: str  # "requests" | "rates"
    start_s: np.ndarray  # requests: arrival_s; rates: window start
    duration_s: np.ndarray  # rates only (zeros for requests)
    rate_rps: np.ndarray  # rates only
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    iat_cv: np.ndarray  # rates only
    is_batch: np.ndarray  # bool
    # rates only: p95 token lengths per window (NaN where the file has none: the default spread)
    input_p95: np.ndarray | None = None
    output_p95: np.ndarray | None = None

    @property
    def span_s(self) -> float:
        if self.kind == "rates":
            return float((self.start_s + self.duration_s).max()) if len(self.start_s) else 0.0
        return float(self.start_s.max()) + 1.0 if len(self.start_s) else 0.0

    def slice(self, start_s: float, duration_s: float | None = None) -> Trace:
        """The part of the trace in [start_s, start_s + duration_s), re-based to start at 0.

        Requests keep those arriving inside; rate windows overlapping the slice are clipped to it."""
        if start_s < 0 or (duration_s is not None and duration_s <= 0):
            raise TraceError(f"{self.name}: a slice needs start >= 0 and a positive duration")
        end_s = math.inf if duration_s is None else start_s + duration_s
        if self.kind == "requests":
            keep = (self.start_s >= start_s) & (self.start_s < end_s)
            starts, durations = self.start_s[keep] - start_s, self.duration_s[keep]
        else:
            ends = self.start_s + self.duration_s
            keep = (ends > start_s) & (self.start_s < end_s)
            clipped_start = np.maximum(self.start_s[keep], start_s)
            durations = np.minimum(ends[keep], end_s) - clipped_start
            starts = clipped_start - start_s
        if not keep.any():
            raise TraceError(f"{self.name}: nothing in the slice [{start_s:g} s, {end_s:g} s) "
                             f"(the trace spans {self.span_s:g} s)")

        def part(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[keep]

        return Trace(self.name, self.kind, starts, durations, self.rate_rps[keep], self.input_tokens[keep],
                     self.output_tokens[keep], self.iat_cv[keep], self.is_batch[keep],
                     part(self.input_p95), part(self.output_p95))

    @property
    def mean_tokens(self) -> tuple[float, float]:
        weights = self.rate_rps * self.duration_s if self.kind == "rates" else np.ones(len(self.start_s))
        total = float(weights.sum()) or 1.0
        return (float((weights * self.input_tokens).sum() / total),
                float((weights * self.output_tokens).sum() / total))


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def load_trace(path: str | Path) -> Trace:
    """Read a request or rate CSV; the header decides which. Raises TraceError with file:line."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    name = path.name.removesuffix(".gz").removesuffix(".csv")
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header[:3]) == REQUEST_COLUMNS:
            kind, numeric = "requests", 3
        elif tuple(header[:5]) == RATE_COLUMNS:
            kind, numeric = "rates", 5
        else:
            raise TraceError(
                f"{path}:1: header must start with {','.join(REQUEST_COLUMNS)} (request CSV) "
                f"or {','.join(RATE_COLUMNS)} (rate CSV), got {','.join(header) or 'nothing'}"
            )
        has_cv = kind == "rates" and "iat_cv" in header
        class_at = header.index("class") if "class" in header else None
        cv_at = header.index("iat_cv") if has_cv else None
        p95_at = [header.index(c) if kind == "rates" and c in header else None
                  for c in ("input_p95", "output_p95")]
        rows: list[list[float]] = []
        classes: list[bool] = []
        for line_no, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                values = [float(row[i]) for i in range(numeric)]
                cv = float(row[cv_at]) if cv_at is not None and row[cv_at].strip() else 1.0
                p95s = [float(row[at]) if at is not None and len(row) > at and row[at].strip() else math.nan
                        for at in p95_at]
            except (ValueError, IndexError):
                raise TraceError(f"{path}:{line_no}: expected numbers, got {','.join(row)}") from None
            if any(not math.isfinite(v) or v < 0 for v in values):
                raise TraceError(f"{path}:{line_no}: values must be finite non-negative numbers")
            if any(not (math.isnan(v) or (math.isfinite(v) and v >= 0)) for v in p95s):
                raise TraceError(f"{path}:{line_no}: input_p95 and output_p95 must be non-negative numbers")
            request_class = row[class_at].strip() if class_at is not None and len(row) > class_at else ""
            if request_class not in ("", *CLASSES):
                raise TraceError(f"{path}:{line_no}: class must be interactive or batch, got {request_class}")
            rows.append([*values, cv, *p95s])
            classes.append(request_class == "batch")
    if not rows:
        raise TraceError(f"{path}: no rows")
    data = np.asarray(rows, dtype=float)
    is_batch = np.asarray(classes, dtype=bool)
    order = np.argsort(data[:, 0], kind="stable")
    data, is_batch = data[order], is_batch[order]
    n = len(data)
    if kind == "requests":
        return Trace(name, kind, data[:, 0], np.zeros(n), np.zeros(n), data[:, 1], data[:, 2],
                     np.ones(n), is_batch)
    if (data[:, 1] <= 0).any():
        raise TraceError(f"{path}: duration_s must be positive")
    return Trace(name, kind, data[:, 0], data[:, 1], data[:, 2], data[:, 3], data[:, 4], data[:, 5], is_batch,
                 data[:, 6], data[:, 7])


def lognormal_sigma(mean: np.ndarray, p95: np.ndarray, default_ratio: float) -> np.ndarray:
    """Sigma of the lognormal with this mean and p95 (NaN p95: `default_ratio` x mean).

    ln p95 = mu + Z95 sigma and ln mean = mu + sigma^2/2 give sigma^2/2 - Z95 sigma + ln(p95/mean) = 0;
    the smaller root is the one that keeps p95 above the median. A p95 at or below the mean has no
    right-skewed fit: no spread (sigma 0). Ratios past the largest a lognormal reaches (e^(Z95^2/2),
    3.87) take its sigma, Z95."""
    mean = np.asarray(mean, dtype=float)
    ratio = np.where(np.isnan(p95), default_ratio, np.asarray(p95, dtype=float) / np.maximum(mean, 1e-9))
    log_ratio = np.log(np.maximum(ratio, 1.0))
    return Z95 - np.sqrt(np.maximum(Z95 * Z95 - 2.0 * log_ratio, 0.0))


@dataclass
class ClassArrivals:
    """Arrivals of one request class per tick. Request traces keep each request's tokens."""

    count: np.ndarray  # int, per tick
    input_tokens: np.ndarray  # mean per tick (0 where no arrivals)
    output_tokens: np.ndarray
    # Per-request arrays, sorted by arrival (request traces, and rate traces up to PER_REQUEST_MAX
    # requests, with drawn token lengths); tick t holds
    # requests first[t] .. first[t] + count[t].
    request_arrival_s: np.ndarray | None = None
    request_input_tokens: np.ndarray | None = None
    request_output_tokens: np.ndarray | None = None
    first: np.ndarray | None = None

    @property
    def total(self) -> int:
        return int(self.count.sum())


@dataclass
class Arrivals:
    tick_s: float
    n_ticks: int
    classes: dict[str, ClassArrivals] = field(default_factory=dict)


def build_arrivals(trace: Trace, *, tick_s: float = 1.0, rate_scale: float = 1.0, seed: int = 0) -> Arrivals:
    """Expand a trace into per-tick arrivals (rate-scaled, seeded)."""
    if rate_scale <= 0:
        raise ValueError("rate scale must be positive")
    rng = np.random.default_rng(seed)
    n_ticks = max(1, math.ceil(trace.span_s / tick_s))
    arrivals = Arrivals(tick_s=tick_s, n_ticks=n_ticks)
    for name, mask in (("interactive", ~trace.is_batch), ("batch", trace.is_batch)):
        if trace.kind == "requests":
            arrivals.classes[name] = _request_arrivals(trace, mask, tick_s, n_ticks, rate_scale, rng)
        else:
            arrivals.classes[name] = _rate_arrivals(trace, mask, tick_s, n_ticks, rate_scale, rng)
    return arrivals


def _request_arrivals(trace: Trace, mask: np.ndarray, tick_s: float, n_ticks: int, scale: float,
                      rng: np.random.Generator) -> ClassArrivals:
    times, inp, out = trace.start_s[mask], trace.input_tokens[mask], trace.output_tokens[mask]
    copies = [np.arange(len(times))[rng.random(len(times)) < min(scale, 1.0)]]
    shifts = [np.zeros(len(copies[0]))]
    extra = scale - 1.0
    while extra > 0:
        picked = np.arange(len(times))[rng.random(len(times)) < min(extra, 1.0)]
        copies.append(picked)
        shifts.append(rng.uniform(-SCALE_JITTER_S, SCALE_JITTER_S, len(picked)))
        extra -= 1.0
    index = np.concatenate(copies)
    # Shifts that fall outside the trace are reflected back in, not clipped: clipping piled every
    # copy shifted before 0 into the first tick (a 5-6x spike no real trace has).
    end_s = n_ticks * tick_s - 1e-6
    at = np.abs(times[index] + np.concatenate(shifts))
    at = np.clip(np.where(at > end_s, 2 * end_s - at, at), 0.0, end_s)
    order = np.argsort(at, kind="stable")
    at, index = at[order], index[order]
    ticks = (at // tick_s).astype(np.int64)
    count = np.bincount(ticks, minlength=n_ticks)[:n_ticks]
    in_sum = np.bincount(ticks, weights=inp[index], minlength=n_ticks)[:n_ticks]
    out_sum = np.bincount(ticks, weights=out[index], minlength=n_ticks)[:n_ticks]
    safe = np.maximum(count, 1)
    first = np.concatenate(([0], np.cumsum(count)[:-1]))
    return ClassArrivals(count, in_sum / safe, out_sum / safe, at, inp[index].astype(float),
                         out[index].astype(float), first)


def _rate_arrivals(trace: Trace, mask: np.ndarray, tick_s: float, n_ticks: int, scale: float,
                   rng: np.random.Generator) -> ClassArrivals:
    count = np.zeros(n_ticks, dtype=np.int64)
    in_sum = np.zeros(n_ticks)
    out_sum = np.zeros(n_ticks)
    expected = float((trace.rate_rps[mask] * scale * trace.duration_s[mask]).sum())
    per_request = expected <= PER_REQUEST_MAX
    drawn_windows: list[tuple[int, int, np.ndarray]] = []  # (window index, first tick, counts per tick)
    windows = np.flatnonzero(mask)
    for index, start, duration, rate, cv, inp, out in zip(
        windows, trace.start_s[mask], trace.duration_s[mask], trace.rate_rps[mask] * scale, trace.iat_cv[mask],
        trace.input_tokens[mask], trace.output_tokens[mask], strict=True,
    ):
        first_tick = int(start // tick_s)
        last_tick = min(n_ticks, int(math.ceil((start + duration) / tick_s)))
        if rate <= 0 or last_tick <= first_tick:
            continue
        cv = min(cv, MAX_IAT_CV) if cv > 0 else 1.0
        span = last_tick - first_tick
        per_tick = rate * tick_s
        if per_tick >= EXACT_ARRIVALS_MAX_PER_TICK:
            # Per-tick counts with the renewal process's mean (rate*tick) and variance (cv^2*rate*tick);
            # gamma rather than normal so that bursty (cv >> 1) windows stay non-negative and keep their mean.
            drawn = rng.gamma(per_tick / (cv * cv), cv * cv, span)
            counts = np.floor(drawn + rng.random(span)).astype(np.int64)
        else:
            shape = 1.0 / (cv * cv)
            mean_n = rate * duration
            gaps = rng.gamma(shape, 1.0 / (rate * shape), int(mean_n + 6 * math.sqrt(mean_n * cv * cv + 1) + 10))
            # Start at a random phase of the renewal process so windows do not all begin with an arrival.
            at = start + np.cumsum(gaps) - gaps[0] * rng.random()
            at = at[(at >= start) & (at < start + duration)]
            ticks = (at // tick_s).astype(np.int64) - first_tick
            ticks = ticks[(ticks >= 0) & (ticks < span)]
            counts = np.bincount(ticks, minlength=span)[:span]
        count[first_tick:last_tick] += counts
        if per_request:
            drawn_windows.append((int(index), first_tick, counts))
        else:
            in_sum[first_tick:last_tick] += counts * inp
            out_sum[first_tick:last_tick] += counts * out
    if per_request:
        return _drawn_requests(trace, drawn_windows, count, tick_s, rng)
    safe = np.maximum(count, 1)
    return ClassArrivals(count, in_sum / safe, out_sum / safe)


def _drawn_requests(trace: Trace, drawn_windows: list[tuple[int, int, np.ndarray]], count: np.ndarray,
                    tick_s: float, rng: np.random.Generator) -> ClassArrivals:
    """Per-request arrivals for a rate trace: uniform inside their tick, with lognormal token lengths
    of their window's mean and p95 (so the long prompts that set a real p95 are there)."""
    n_ticks = len(count)
    if drawn_windows:
        window = np.concatenate([np.full(int(c.sum()), w) for w, _, c in drawn_windows])
        ticks = np.concatenate([np.repeat(np.arange(t0, t0 + len(c)), c) for _, t0, c in drawn_windows])
    else:
        window, ticks = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    at = (ticks + rng.random(len(ticks))) * tick_s
    nan = np.full(len(trace.start_s), math.nan)
    tokens = []
    for means, p95, ratio in ((trace.input_tokens, trace.input_p95, DEFAULT_P95_OVER_MEAN[0]),
                              (trace.output_tokens, trace.output_p95, DEFAULT_P95_OVER_MEAN[1])):
        sigma = lognormal_sigma(means, nan if p95 is None else p95, ratio)[window]
        mean = means[window]
        # mu = ln(mean) - sigma^2/2 keeps each window's mean token count; lengths are whole tokens >= 1.
        drawn = np.exp(np.log(np.maximum(mean, 1.0)) - sigma * sigma / 2.0 + sigma * rng.standard_normal(len(at)))
        tokens.append(np.maximum(1.0, np.rint(drawn)))
    order = np.argsort(at, kind="stable")
    at, inp, out, ticks = at[order], tokens[0][order], tokens[1][order], ticks[order]
    safe = np.maximum(count, 1)
    in_mean = np.bincount(ticks, weights=inp, minlength=n_ticks)[:n_ticks] / safe
    out_mean = np.bincount(ticks, weights=out, minlength=n_ticks)[:n_ticks] / safe
    first = np.concatenate(([0], np.cumsum(count)[:-1]))
    return ClassArrivals(count, in_mean, out_mean, at, inp, out, first)
