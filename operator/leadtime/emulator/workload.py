"""What the emulator replays: a trace window as replica-model Requests, and the replica profile."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from leadtime.cli import CliError
from leadtime.replica import DEFAULT_PROFILE, ReplicaProfile, Request, get_profile


@dataclass(frozen=True)
class TraceRow:
    arrival_s: float
    input_tokens: int
    output_tokens: int
    request_class: str = "interactive"


def load_profile(name_or_path: str | None) -> ReplicaProfile:
    """A named profile (`llama-8b-h100`, ...) or a YAML file with ReplicaProfile fields."""
    if not name_or_path:
        return get_profile(DEFAULT_PROFILE)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        try:
            return ReplicaProfile.from_dict(yaml.safe_load(path.read_text()))
        except (OSError, ValueError, TypeError, yaml.YAMLError) as err:
            raise CliError(f"profile {name_or_path}: {err}") from err
    try:
        return get_profile(name_or_path)
    except ValueError as err:
        raise CliError(str(err)) from err


def read_trace_rows(path: str) -> list[TraceRow]:
    """The canonical trace CSV: arrival_s, input_tokens, output_tokens[, request_class]."""
    try:
        from leadtime.sim import traces as sim_traces  # the simulator's reader is the source of truth
    except ImportError:
        sim_traces = None
    if sim_traces is not None and hasattr(sim_traces, "read_trace"):
        return [
            TraceRow(r.arrival_s, int(r.input_tokens), int(r.output_tokens), getattr(r, "request_class", "interactive"))
            for r in sim_traces.read_trace(path)
        ]
    try:
        with open(path, newline="") as handle:
            return [
                TraceRow(
                    float(row["arrival_s"]), int(row["input_tokens"]), int(row["output_tokens"]),
                    (row.get("request_class") or "interactive").strip(),
                )
                for row in csv.DictReader(handle)
            ]
    except (OSError, KeyError, ValueError) as err:
        raise CliError(f"trace {path}: {err}") from err


def window(
    rows: Iterable[TraceRow], *, start_s: float = 0.0, duration_s: float | None = None,
    rate_scale: float = 1.0, seed: int = 0,
) -> list[Request]:
    """Requests of [start_s, start_s + duration_s) re-based to 0, with the rate scaled, deterministically.

    rate_scale < 1 keeps each request with that probability; > 1 adds copies of each request, spread
    uniformly up to the next arrival so bursts keep their shape instead of doubling at one instant.
    """
    ordered = sorted(rows, key=lambda r: r.arrival_s)
    if not ordered:
        return []
    origin = ordered[0].arrival_s + start_s
    end = float("inf") if duration_s is None else origin + duration_s
    selected = [r for r in ordered if origin <= r.arrival_s < end]
    rng = random.Random(seed)
    out: list[Request] = []
    for i, row in enumerate(selected):
        gap = (selected[i + 1].arrival_s - row.arrival_s) if i + 1 < len(selected) else 0.0
        copies = int(rate_scale) + (1 if rng.random() < rate_scale - int(rate_scale) else 0)
        for copy in range(copies):
            offset = 0.0 if copy == 0 else rng.uniform(0.0, gap)
            out.append(
                Request(
                    arrival_s=row.arrival_s - origin + offset, input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens, request_class=row.request_class,
                )
            )
    out.sort(key=lambda r: r.arrival_s)
    for request_id, request in enumerate(out):
        request.request_id = request_id
    return out


def load_requests(
    path: str, *, start_s: float = 0.0, duration_s: float | None = None, rate_scale: float = 1.0, seed: int = 0
) -> list[Request]:
    return window(read_trace_rows(path), start_s=start_s, duration_s=duration_s, rate_scale=rate_scale, seed=seed)
