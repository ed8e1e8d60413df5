"""Step: forecast interactive demand one lead time ahead (Holt's linear smoothing, damped trend).

The arrival rate from Prometheus is already a windowed rate, so the level is smoothed lightly; the
trend is smoothed more and damped, because a trend extrapolated over a 10-minute cold start is
exactly what turns one noisy minute into a wild forecast. The forecast is also bounded without any
seasonal assumption: never below zero, never more than `MAX_GROWTH_FACTOR` times the level. Each
forecast is remembered with the time it targets; when that time comes, its error (rps) feeds the
margin, the 95th percentile of those errors. Measured in rps, that margin grows like the swings
it sees: √demand for Poisson-like noise, so relative headroom shrinks at scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from leadtime.policy.types import Memory

# Time constants (seconds) rather than per-step weights, so the forecaster behaves the same whether
# it runs every 2 s or every 15 s.
LEVEL_TIME_CONSTANT_S = 10.0
TREND_TIME_CONSTANT_S = 90.0
# The trend's effect saturates after about this long: a trend smoothed over ~90 s of 1-minute rates
# describes the last couple of minutes, and demand rarely keeps that slope for longer. At 300 s the
# extrapolated wobble of flat, noisy traces bought 10-35 % more GPU-hours at 600 s cold starts for
# no window met (mooncake, azure-conv, azure-code); sustained ramps (ServeGen's days) lost 0.3 % of
# windows at 600 s with 60 s, and the forecast-error margin grows to cover the rest of a ramp.
TREND_DAMPING_S = 60.0
MAX_GROWTH_FACTOR = 3.0
# Forecast errors: exponentially weighted over about this many resolved forecasts.
ERROR_MEMORY_FORECASTS = 30.0
# Until forecasts have been checked their error is unknown and the margin is the largest allowed (a
# new deployment pays for headroom rather than learning its error from missed SLO windows); each
# check then hands weight to the measured errors — the unknown-error margin counts as this many
# checks — so the margin is about halved after the first check instead of staying the largest
# until ten, which cost 5-20 % of a one-hour run's GPU-hours.
UNKNOWN_ERROR_FORECASTS = 1.0
# The margin covers this one-sided quantile of the forecast error (normal approximation): demand
# above forecast + margin happens about 5 % of the time.
ERROR_QUANTILE_Z = 1.645
# The margin never exceeds this multiple of the forecast (at least one replica's capacity): a burst
# after silence must not turn into an order of magnitude more replicas.
MAX_MARGIN_FACTOR = 1.0
# At most this many forecasts awaiting resolution (they are subsampled over the horizon).
MAX_PENDING_FORECASTS = 24


@dataclass(frozen=True)
class Forecast:
    level_rps: float  # smoothed current demand
    trend_rps_per_s: float
    horizon_s: float
    at_horizon_rps: float  # demand expected `horizon_s` from now (bounded)
    peak_rps: float  # the most demand expected between now and the horizon
    under_forecast_ratio: float  # recent shortfall of forecasts relative to what arrived
    margin_rps: float = 0.0  # headroom over `peak_rps` covering the 95th percentile of forecast errors
    error_mean_rps: float = 0.0  # EW mean of (actual − forecast), signed
    error_sd_rps: float = 0.0  # EW standard deviation of that error
    resolved: int = 0  # forecasts checked against what arrived so far (capped)


def damped_horizon_s(horizon_s: float) -> float:
    """How many seconds of trend a damped trend accumulates over `horizon_s`."""
    return TREND_DAMPING_S * (1.0 - math.exp(-max(horizon_s, 0.0) / TREND_DAMPING_S))


def noise_scale_rps(demand_rps: float, unit_rps: float) -> float:
    """The size of demand's noise at `demand_rps`: √(demand × one replica's capacity), in rps.

    At one replica of demand it is one replica; at 25 replicas it is 5, so relative noise halves
    every time demand quadruples (what Poisson arrivals, or many independent users, do).
    """
    unit_rps = max(unit_rps, 1e-9)
    return math.sqrt(max(demand_rps, unit_rps) * unit_rps)


def update_forecast(
    forecast_memory: Memory | None, observed_rps: float, horizon_s: float, now_s: float, unit_rps: float
) -> tuple[Forecast, Memory]:
    """Fold the newest arrival rate into the smoothed level and trend and forecast `horizon_s` ahead.

    `unit_rps` (one replica's capacity) keeps the under-forecast ratio meaningful at tiny demand.
    """
    previous = forecast_memory or {}
    observed_rps = max(observed_rps, 0.0)
    if "level_rps" not in previous:
        level_rps, trend_rps_per_s = observed_rps, 0.0
    else:
        elapsed_s = max(now_s - float(previous["at_s"]), 0.0)
        old_level_rps = float(previous["level_rps"])
        old_trend = float(previous["trend_rps_per_s"])
        if elapsed_s <= 0.0:
            level_rps, trend_rps_per_s = old_level_rps, old_trend
        else:
            level_weight = 1.0 - math.exp(-elapsed_s / LEVEL_TIME_CONSTANT_S)
            trend_weight = 1.0 - math.exp(-elapsed_s / TREND_TIME_CONSTANT_S)
            predicted_rps = max(old_level_rps + old_trend * damped_horizon_s(elapsed_s), 0.0)
            level_rps = predicted_rps + level_weight * (observed_rps - predicted_rps)
            trend_rps_per_s = old_trend + trend_weight * ((level_rps - old_level_rps) / elapsed_s - old_trend)

    at_horizon_rps = level_rps + trend_rps_per_s * damped_horizon_s(horizon_s)
    at_horizon_rps = min(max(at_horizon_rps, 0.0), MAX_GROWTH_FACTOR * max(level_rps, unit_rps))
    peak_rps = max(level_rps, at_horizon_rps)

    # Resolve forecasts whose target time has come, against the demand seen now.
    under_ratio = float(previous.get("under_forecast_ratio", 0.0))
    error_mean_rps = float(previous.get("error_mean_rps", 0.0))
    error_square = float(previous.get("error_square_rps2", 0.0))
    resolved = int(previous.get("resolved", 0))
    checked = int(previous.get("checked", resolved))
    still_pending: list[list[float]] = []
    for target_s, forecast_rps in previous.get("pending", []):
        if target_s <= now_s:
            error_rps = observed_rps - forecast_rps
            under_ratio += (max(error_rps, 0.0) / max(forecast_rps, unit_rps) - under_ratio) / ERROR_MEMORY_FORECASTS
            # Plain averages until the memory is full, then exponentially weighted.
            resolved = min(resolved + 1, int(ERROR_MEMORY_FORECASTS))
            checked += 1
            error_mean_rps += (error_rps - error_mean_rps) / resolved
            error_square += (error_rps * error_rps - error_square) / resolved
        else:
            still_pending.append([float(target_s), float(forecast_rps)])
    spacing_s = max(horizon_s / MAX_PENDING_FORECASTS, 1e-9)
    if not still_pending or now_s - float(previous.get("last_recorded_s", -math.inf)) >= spacing_s:
        still_pending.append([now_s + horizon_s, peak_rps])
        last_recorded_s = now_s
    else:
        last_recorded_s = float(previous.get("last_recorded_s", now_s))
    still_pending = still_pending[-MAX_PENDING_FORECASTS:]

    error_sd_rps = math.sqrt(max(error_square - error_mean_rps * error_mean_rps, 0.0))
    max_margin_rps = MAX_MARGIN_FACTOR * max(peak_rps, unit_rps)
    measured_margin_rps = max(error_mean_rps + ERROR_QUANTILE_Z * error_sd_rps, 0.0)
    unknown_weight = UNKNOWN_ERROR_FORECASTS / (UNKNOWN_ERROR_FORECASTS + checked)
    margin_rps = unknown_weight * max_margin_rps + (1.0 - unknown_weight) * measured_margin_rps
    margin_rps = min(margin_rps, max_margin_rps)

    memory: Memory = {
        "level_rps": level_rps,
        "trend_rps_per_s": trend_rps_per_s,
        "at_s": now_s,
        "under_forecast_ratio": under_ratio,
        "error_mean_rps": error_mean_rps,
        "error_square_rps2": error_square,
        "resolved": resolved,
        "checked": checked,
        "pending": still_pending,
        "last_recorded_s": last_recorded_s,
    }
    forecast = Forecast(
        level_rps=level_rps,
        trend_rps_per_s=trend_rps_per_s,
        horizon_s=horizon_s,
        at_horizon_rps=at_horizon_rps,
        peak_rps=peak_rps,
        under_forecast_ratio=under_ratio,
        margin_rps=margin_rps,
        error_mean_rps=error_mean_rps,
        error_sd_rps=error_sd_rps,
        resolved=resolved,
    )
    return forecast, memory
