"""What the emulator replays: a trace window as replica-model Requests, and the replica profile."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml

from leadtime.cli import CliError
from leadtime.replica import DEFAULT_PROFILE, ReplicaProfile, Request, get_profile
from leadtime.sim.traces import TraceError, build_arrivals, load_trace

# Rate traces give arrivals per window; they are expanded per second of trace, as the simulator does.
RATE_TICK_S = 1.0


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


def trace_requests(path: str, *, rate_scale: float = 1.0, seed: int = 0) -> list[Request]:
    """Every request of a canonical trace (the simulator's reader), rate-scaled the simulator's way.

    Request CSVs keep each request's own arrival time and tokens; rate CSVs give arrivals per second,
    which are spread uniformly inside their second (seeded) with the window's mean token counts.
    """
    try:
        trace = load_trace(path)
        arrivals = build_arrivals(trace, tick_s=RATE_TICK_S, rate_scale=rate_scale, seed=seed)
    except (TraceError, ValueError) as err:
        raise CliError(str(err)) from err
    rng = np.random.default_rng(seed)
    out: list[Request] = []
    for request_class, a in arrivals.classes.items():
        if a.request_arrival_s is not None:
            assert a.request_input_tokens is not None and a.request_output_tokens is not None
            for at, inp, outp in zip(a.request_arrival_s, a.request_input_tokens, a.request_output_tokens, strict=True):
                out.append(Request(float(at), int(inp), int(outp), request_class=request_class))
            continue
        for tick in np.nonzero(a.count)[0]:
            n = int(a.count[tick])
            for offset in np.sort(rng.uniform(0.0, arrivals.tick_s, n)):
                out.append(
                    Request(
                        float(tick * arrivals.tick_s + offset), max(1, round(float(a.input_tokens[tick]))),
                        max(1, round(float(a.output_tokens[tick]))), request_class=request_class,
                    )
                )
    return out


def window(requests: Iterable[Request], *, start_s: float = 0.0, duration_s: float | None = None) -> list[Request]:
    """Requests arriving in [start_s, start_s + duration_s) of the trace, re-based to 0 and numbered in order."""
    end = float("inf") if duration_s is None else start_s + duration_s
    selected = sorted((r for r in requests if start_s <= r.arrival_s < end), key=lambda r: r.arrival_s)
    for request_id, request in enumerate(selected):
        request.arrival_s -= start_s
        request.request_id = request_id
    return selected


def load_requests(
    path: str, *, start_s: float = 0.0, duration_s: float | None = None, rate_scale: float = 1.0, seed: int = 0
) -> list[Request]:
    return window(trace_requests(path, rate_scale=rate_scale, seed=seed), start_s=start_s, duration_s=duration_s)
