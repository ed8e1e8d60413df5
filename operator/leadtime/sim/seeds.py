"""Runs over several seeds: one JSON run per (policy, params), the mean of its seeds in each numeric field."""

from __future__ import annotations

import json
import math
from typing import Any


def _key(run: dict[str, Any]) -> tuple[str, str]:
    return run["policy"], json.dumps(run["params"], sort_keys=True)


def match_runs(per_seed: dict[int, list[dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """Groups of (seed, run) that are the same run in different seeds, in the first seed's order.

    Runs match by (policy, params). A run whose params come from the scenario (static's replicas, the
    oracle's plan) can differ per seed: those that find no partner by params match by their policy and
    their position among that policy's unmatched runs."""
    seeds = list(per_seed)
    common = set.intersection(*({_key(run) for run in runs} for runs in per_seed.values()))
    groups: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    order: list[tuple[str, str]] = []
    for seed in seeds:
        unmatched_seen: dict[str, int] = {}
        for run in per_seed[seed]:
            key = _key(run)
            if key not in common:
                position = unmatched_seen.get(run["policy"], 0)
                unmatched_seen[run["policy"]] = position + 1
                key = (run["policy"], f"#{position}")
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append((seed, run))
    return [groups[key] for key in order]


def _mean(values: list[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    mean = math.fsum(numbers) / len(numbers)
    return round(mean, 6)


def mean_over_seeds(per_seed: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One run per matched group: numeric fields are the mean over its seeds (nulls left out), others
    are the first seed's; `per_seed` lists each seed's own run (with its `seed`)."""
    runs = []
    for group in match_runs(per_seed):
        first = group[0][1]
        merged: dict[str, Any] = {}
        for field, value in first.items():
            if isinstance(value, int | float | type(None)) and not isinstance(value, bool):
                merged[field] = _mean([run.get(field) for _, run in group])
            else:
                merged[field] = value
        merged["per_seed"] = [{"seed": seed, **run} for seed, run in group]
        runs.append(merged)
    return runs
