"""`--sweep`: the baselines' runs planned in two passes, and a process pool that runs them.

Pass 1 runs every swept baseline over its whole target grid (≤ ×1.25 between neighbours) at the
controller's default behaviour. Pass 2 varies the behaviour knobs a careful user tunes for GPU cold
starts — HPA's scale-down stabilisation window and tolerance, KPA's stable window — around the few
targets pass 1 found best. Tuning every knob at every target would cost ~8× the runs for points far
from the frontier's useful end.

Which targets are "best" (`chosen_targets`): the cheapest pass-1 run with ≥ 99 % of windows within the
SLO and the two grid targets on either side of it (≈ ×1.5 each way: a longer window lets a larger
target reach 99 %, a shorter one needs a smaller target), plus the cheapest run with ≥ 95 %. A
baseline with no run at 99 % anchors on its 95 % point instead, and one with neither on its
best-attaining run (the cheapest of those, on a tie).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import product
from typing import Any

from leadtime.policy import POLICIES
from leadtime.policy.baselines.hpa import SCALE_DOWN_STABILIZATION_S, TOLERANCE
from leadtime.policy.baselines.kpa import STABLE_WINDOW_S
from leadtime.policy.types import PolicyConfig

Run = tuple[str, dict[str, Any]]

# Each swept baseline's target parameter.
TARGET_PARAM = {
    "hpa": "target_in_flight_per_pod",
    "keda-waiting": "target_waiting_per_pod",
    "hpa-rps": "target_rps_per_pod",
    "kpa": "target_concurrency",
}
SWEPT = tuple(TARGET_PARAM)
HPA_VARIANTS = ("hpa", "keda-waiting", "hpa-rps")
STABILIZATION_WINDOWS_S = (0.0, 60.0, 300.0, 600.0)
TOLERANCES = (0.05, 0.1)
KPA_STABLE_WINDOWS_S = (30.0, 60.0, 120.0)
ATTAINMENT_ANCHORS = (0.99, 0.95)
NEIGHBOURS = 2  # grid targets tuned on each side of the main anchor


def first_pass(names: Iterable[str], config: PolicyConfig) -> list[Run]:
    """Every swept baseline in `names` at each target of its grid, default behaviour."""
    return [(name, dict(params)) for name in names if name in SWEPT
            for params in POLICIES[name].default_sweep(config)]


def chosen_targets(points: Sequence[tuple[float, float, float]]) -> list[float]:
    """The targets pass 2 tunes around, from pass-1 (target, GPU-hours, window attainment) points."""
    if not points:
        return []
    grid = sorted({target for target, _, _ in points})
    chosen: set[float] = set()
    anchors = []
    for share in ATTAINMENT_ANCHORS:
        meeting = [p for p in points if p[2] >= share]
        anchors.append(min(meeting, key=lambda p: (p[1], -p[2])) if meeting else None)
    main = next((a for a in anchors if a is not None), None)
    if main is None:
        main = max(points, key=lambda p: (p[2], -p[1]))
    at = grid.index(main[0])
    chosen.update(grid[max(0, at - NEIGHBOURS): at + NEIGHBOURS + 1])
    chosen.update(a[0] for a in anchors if a is not None)
    return sorted(chosen)


def second_pass(results: Sequence[Any]) -> list[Run]:
    """Behaviour-knob runs around each baseline's chosen targets, from pass-1 `RunResult`s.

    Only baselines with a grid (two or more pass-1 targets at default behaviour) are tuned, so a run
    list without `--sweep` gets no second pass. The default behaviour is not run again.
    """
    points: dict[str, list[tuple[float, float, float]]] = {}
    for result in results:
        key = TARGET_PARAM.get(result.policy)
        if key is None or key not in result.params or not _default_behaviour(result.policy, result.params):
            continue
        metrics = result.metrics
        points.setdefault(result.policy, []).append(
            (float(result.params[key]), metrics.gpu_hours, metrics.slo_window_attainment))
    runs: list[Run] = []
    for name, found in points.items():
        if len({target for target, _, _ in found}) < 2:
            continue
        key = TARGET_PARAM[name]
        for target in chosen_targets(found):
            if name in HPA_VARIANTS:
                for window_s, tolerance in product(STABILIZATION_WINDOWS_S, TOLERANCES):
                    if (window_s, tolerance) != (SCALE_DOWN_STABILIZATION_S, TOLERANCE):
                        runs.append((name, {key: target, "scale_down_stabilization_s": window_s,
                                            "tolerance": tolerance}))
            else:
                runs.extend((name, {key: target, "stable_window_s": window_s})
                            for window_s in KPA_STABLE_WINDOWS_S if window_s != STABLE_WINDOW_S)
    return runs


def _default_behaviour(name: str, params: dict[str, Any]) -> bool:
    if name in HPA_VARIANTS:
        return (params.get("scale_down_stabilization_s", SCALE_DOWN_STABILIZATION_S) == SCALE_DOWN_STABILIZATION_S
                and params.get("tolerance", TOLERANCE) == TOLERANCE)
    return params.get("stable_window_s", STABLE_WINDOW_S) == STABLE_WINDOW_S


# --- running many independent runs --------------------------------------------------------------

_WORKER_SCENARIO: Any = None


def _init_worker(scenario: Any) -> None:
    # The scenario reaches each worker once, here (copied by fork, or pickled once per worker on
    # platforms that spawn), instead of with every task.
    global _WORKER_SCENARIO
    _WORKER_SCENARIO = scenario


def _run_in_worker(name: str, params: dict[str, Any], record_timeline: bool) -> Any:
    from leadtime.sim.run import run_one

    return run_one(name, params, _WORKER_SCENARIO, record_timeline=record_timeline)


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_many(
    runs: Sequence[Run],
    scenario: Any,
    *,
    workers: int | None = None,
    record_timeline: bool = True,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Run each (name, params) over the scenario, in worker processes; results in input order.

    With one worker (or one run) the runs go in this process. `on_result` is called with each
    result, in input order, as soon as it and all before it are done.
    """
    from leadtime.sim.run import run_one

    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if workers == 1 or len(runs) <= 1:
        results = []
        for name, params in runs:
            results.append(run_one(name, params, scenario, record_timeline=record_timeline))
            if on_result:
                on_result(results[-1])
        return results
    with ProcessPoolExecutor(max_workers=min(workers, len(runs)), initializer=_init_worker,
                             initargs=(scenario,)) as pool:
        futures = [pool.submit(_run_in_worker, name, dict(params), record_timeline) for name, params in runs]
        results = []
        for future in futures:
            results.append(future.result())
            if on_result:
                on_result(results[-1])
    return results


def run_sweep(
    runs: Sequence[Run],
    scenario: Any,
    *,
    workers: int | None = None,
    record_timeline: bool = True,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Run `runs` (pass 1 with its target grids, or plain runs), then pass 2 around the best targets
    of every baseline that had a grid; pass-1 results first, in input order, then pass 2's."""
    per_run = run_seeds(runs, [scenario], workers=workers, record_timeline=record_timeline, on_result=on_result)
    return [results[0] for results in per_run]


@dataclass(frozen=True)
class _MeanPoint:
    """A run's mean over seeds, in the shape `second_pass` reads (policy, params, metrics)."""

    policy: str
    params: dict[str, Any]
    metrics: Any


@dataclass(frozen=True)
class _MeanMetrics:
    gpu_hours: float
    slo_window_attainment: float


def run_seeds(
    runs: Sequence[Run],
    scenarios: Sequence[Any],
    *,
    workers: int | None = None,
    record_timeline: bool = False,
    on_result: Callable[[Any], None] | None = None,
) -> list[list[Any]]:
    """`run_sweep` over several seeds' scenarios, with one run list for all of them.

    Pass 1 runs on every seed; pass 2 is chosen from the pass-1 means over the seeds, so every seed
    runs the same (name, params) and a sweep point's mean is over the same configuration. Returns,
    per run (pass 1 in input order, then pass 2), its results per seed, in the scenarios' order.
    """
    first = [run_many(runs, scenario, workers=workers, record_timeline=record_timeline, on_result=on_result)
             for scenario in scenarios]
    per_run = [list(results) for results in zip(*first, strict=True)] if first else []
    means = [_MeanPoint(results[0].policy, dict(params),
                        _MeanMetrics(sum(r.metrics.gpu_hours for r in results) / len(results),
                                     sum(r.metrics.slo_window_attainment for r in results) / len(results)))
             for (_, params), results in zip(runs, per_run, strict=True)]
    more = second_pass(means)
    second = [run_many(more, scenario, workers=workers, record_timeline=record_timeline, on_result=on_result)
              for scenario in scenarios]
    return per_run + [list(results) for results in zip(*second, strict=True)]
