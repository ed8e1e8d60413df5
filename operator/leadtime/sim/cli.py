"""`leadtime simulate` and `leadtime trace import`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from leadtime.cli import CliError
from leadtime.replica import DEFAULT_PROFILE, PROFILES, ReplicaProfile, get_profile

SLO_METRICS = ("ttft", "e2e")


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("simulate", help="run scaling policies over a trace on a virtual clock",
                                description="Run scaling policies side by side over a trace.")
    sim.add_argument("--trace", required=True, help="request or rate CSV (see docs/simulator.md)")
    sim.add_argument("--rate-scale", type=float, default=1.0, help="multiply the trace's request rate")
    sim.add_argument("--profile", default=DEFAULT_PROFILE,
                     help=f"replica profile name ({', '.join(sorted(PROFILES))}) or a YAML file")
    sim.add_argument("--cold-start", default=None, help='e.g. "120s" or "lognormal:p50=22.7,p99=51.9"')
    sim.add_argument("--slo-metric", choices=SLO_METRICS, default="ttft")
    sim.add_argument("--slo-p95-s", type=float, default=2.0)
    sim.add_argument("--policy", default="leadtime,hpa,kpa,clairvoyant,static,bound",
                     help="comma-separated: leadtime, hpa, keda-waiting, hpa-rps, kpa, clairvoyant, static, "
                          "bound (the proven lower bound)")
    sim.add_argument("--sweep", action="store_true",
                     help="sweep each baseline's target grid, then its behaviour knobs around the best targets")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--tick-s", type=float, default=None, help="simulator tick (default 1 s; 5 s beyond 2 days)")
    sim.add_argument("--queue-limit", type=int, default=None, help="drop arrivals beyond this queue (reported)")
    sim.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    sim.add_argument("--plot", default=None, help="write a PNG: demand, replicas and p95 per policy")
    sim.set_defaults(func=_simulate)

    trace = subparsers.add_parser("trace", help="trace utilities")
    trace_sub = trace.add_subparsers(dest="trace_command", required=True, metavar="COMMAND")
    imp = trace_sub.add_parser("import", help="convert a public raw trace into the canonical CSV")
    imp.add_argument("--format", required=True, choices=("azure", "mooncake", "servegen"))
    imp.add_argument("--category", default=None, help="ServeGen category (e.g. m-mid) if SRC holds several")
    imp.add_argument("src")
    imp.add_argument("-o", "--output", required=True)
    imp.set_defaults(func=_import)


def load_profile(spec: str, cold_start: str | None) -> ReplicaProfile:
    try:
        if spec.endswith((".yaml", ".yml")):
            import yaml

            path = Path(spec)
            if not path.is_file():
                raise CliError(f"{spec}: no such profile file")
            profile = ReplicaProfile.from_dict(yaml.safe_load(path.read_text()) or {})
        else:
            profile = get_profile(spec)
        return profile.with_cold_start(cold_start) if cold_start else profile
    except (ValueError, TypeError) as err:
        raise CliError(str(err).splitlines()[0]) from None


def _import(args: argparse.Namespace) -> int:
    from leadtime.sim.importers import import_trace
    from leadtime.sim.traces import TraceError

    try:
        rows = import_trace(args.format, args.src, args.output, category=args.category)
    except TraceError as err:
        raise CliError(str(err)) from None
    print(f"wrote {rows} rows to {args.output}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from leadtime.sim.run import make_scenario, policy_runs
    from leadtime.sim.traces import TraceError

    profile = load_profile(args.profile, args.cold_start)
    if args.slo_p95_s <= 0 or args.rate_scale <= 0:
        raise CliError("--slo-p95-s and --rate-scale must be positive")
    names = [n.strip() for n in args.policy.split(",") if n.strip()]
    try:
        scenario = make_scenario(args.trace, profile, rate_scale=args.rate_scale, slo_metric=args.slo_metric,
                                 slo_p95_s=args.slo_p95_s, seed=args.seed, tick_s=args.tick_s,
                                 queue_limit=args.queue_limit)
        runs = policy_runs(names, scenario, args.sweep)
    except (TraceError, ValueError) as err:
        raise CliError(str(err)) from None
    results = _run_all(runs, scenario)
    doc = result_document(args.trace, profile, scenario, results)
    _print_table(doc)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n")
    if args.plot:
        from leadtime.sim.plot import plot_runs

        plot_runs(scenario, [r for r in results if r.timeline is not None], args.plot)
    return 0


def _run_all(runs: list[tuple[str, dict[str, Any]]], scenario) -> list:  # noqa: ANN001
    from leadtime.sim.sweep import run_sweep

    # Independent runs go to worker processes; a --sweep's pass 2 (behaviour knobs around the best
    # targets) follows its pass 1. Long runs (multi-day traces, sweeps) count finished runs on stderr.
    long_run = scenario.arrivals.n_ticks * len(runs) > 200_000 and sys.stderr.isatty()
    if not long_run:
        return run_sweep(runs, scenario)
    from rich.progress import Progress

    # No refresh thread: the worker processes are forked, and a fork while a thread runs can deadlock.
    with Progress(transient=True, auto_refresh=False) as bar:
        overall = bar.add_task("simulating", total=None)
        done = []

        def advance(result) -> None:  # noqa: ANN001
            done.append(result)
            bar.update(overall, description=f"simulating: {len(done)} runs done")
            bar.refresh()

        return run_sweep(runs, scenario, on_result=advance)


def result_document(trace: str, profile: ReplicaProfile, scenario, results: list) -> dict[str, Any]:  # noqa: ANN001
    return {
        "trace": str(trace),
        "profile": profile.name,
        "cold_start": profile.cold_start.spec,
        "slo": {"metric": scenario.config.slo_metric, "p95_s": scenario.config.slo_p95_s,
                "window_s": scenario.config.slo_window_s},
        "runs": [r.to_json() for r in results],
    }


def _print_table(doc: dict[str, Any]) -> None:
    print(f"trace {doc['trace']}  profile {doc['profile']}  cold start {doc['cold_start']}  "
          f"SLO p95 {doc['slo']['metric']} <= {doc['slo']['p95_s']} s")
    print(f"{'policy':<10} {'params':<34} {'GPU-h':>9} {'cost $':>10} {'win SLO':>8} {'req SLO':>8} "
          f"{'p95 s':>8} {'scales':>7} {'idle':>6} {'wall s':>7}")
    for run in doc["runs"]:
        params = ",".join(f"{k}={v}" for k, v in run["params"].items())
        print(f"{run['policy']:<10} {params[:34]:<34} {run['gpu_hours']:>9.2f} {run['cost_usd']:>10.2f} "
              f"{run['slo_window_attainment']:>8.2%} {run['slo_request_attainment']:>8.2%} "
              f"{run['p95_latency_s']:>8.2f} {run['scale_events']:>7} {run['idle_gpu_share']:>6.1%} {run['wall_s']:>7.2f}")
        if run["dropped"]:
            print(f"{'':<10} dropped {run['dropped']} requests")


def elapsed(start: float) -> float:
    return time.perf_counter() - start
