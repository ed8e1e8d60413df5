"""Steps: floors and bounds, and a windowed maximum used to delay scale-down."""

from __future__ import annotations

from collections.abc import Sequence

from leadtime.policy.types import FloorWindow, PolicyConfig

SECONDS_PER_DAY = 86_400


def minute_of_day_utc(now_s: float) -> int:
    """Minutes after midnight UTC of epoch second `now_s`."""
    return int((now_s % SECONDS_PER_DAY) // 60)


def window_applies(window: FloorWindow, minute: int) -> bool:
    if window.start_minute <= window.end_minute:
        return window.start_minute <= minute < window.end_minute
    return minute >= window.start_minute or minute < window.end_minute  # wraps past midnight


def floor_replicas(config: PolicyConfig, now_s: float) -> tuple[int, str]:
    """The interactive floor now: the warm floor, raised by any time-of-day floor that applies."""
    minute = minute_of_day_utc(now_s)
    floor, source = config.warm_floor, "warm floor"
    for window in config.floors:
        if window_applies(window, minute) and window.replicas > floor:
            floor = window.replicas
            source = f"time-of-day floor {window.start_minute // 60:02d}:{window.start_minute % 60:02d}"
    return min(floor, config.max_replicas), source


def clamp(replicas: int, floor: int, ceiling: int) -> int:
    return max(floor, min(replicas, ceiling))


def record_windowed_max(
    history: Sequence[Sequence[float]], now_s: float, value: int, window_s: float
) -> tuple[list[list[float]], int]:
    """Add `value` at `now_s` and return (history, max over the last `window_s`).

    The history is a monotone queue — each kept entry is larger than every later one — so it is
    exact and stays short enough to live in the resource's status.
    """
    kept = [[float(at_s), float(v)] for at_s, v in history if now_s - at_s < window_s]
    while kept and kept[-1][1] <= value:
        kept.pop()
    kept.append([now_s, float(value)])
    return kept, int(kept[0][1])
