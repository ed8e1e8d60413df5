"""`leadtime simulate` and `leadtime trace import`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadtime.cli import CliError
from leadtime.replica import (
    DEFAULT_PROFILE,
    PROFILES,
    ColdStart,
    ReplicaProfile,
    get_profile,
    parse_cold_start,
)
from leadtime.sim.seeds import mean_over_seeds

SLO_METRICS = ("ttft", "e2e")


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("simulate", help="run scaling policies over a trace on a virtual clock",
                                description="Run scaling policies side by side over a trace.")
    sim.add_argument("--trace", required=True, help="request or rate CSV (see docs/simulator.md)")
    sim.add_argument("--rate-scale", default="1", help="multiply the trace's request rate (0 < X <= 1000)")
    sim.add_argument("--profile", default=DEFAULT_PROFILE,
                     help=f"replica profile name ({', '.join(sorted(PROFILES))}) or a YAML file")
    sim.add_argument("--cold-start", default=None,
                     help='e.g. "120s", "lognormal:p50=22.7,p99=51.9" or "empirical:FILE" (seconds, one a line)')
    sim.add_argument("--slo-metric", choices=SLO_METRICS, default="ttft")
    sim.add_argument("--slo-p95-s", default="2", help="p95 latency target, seconds (default 2)")
    sim.add_argument("--policy", default="leadtime,hpa,kpa,clairvoyant,static,bound",
                     help="comma-separated: leadtime, hpa, keda-waiting, hpa-rps, kpa, clairvoyant, static, "
                          "bound (the proven lower bound)")
    sim.add_argument("--sweep", action="store_true",
                     help="sweep each baseline's target grid, then its behaviour knobs around the best targets")
    sim.add_argument("--seed", default="0", help="first random seed (arrivals, scale copies, cold starts)")
    sim.add_argument("--seeds", default="1", help="run seeds SEED .. SEED+N-1 and report the mean (1 <= N <= 100)")
    sim.add_argument("--tick-s", default=None, help="simulator tick (default 1 s; 5 s beyond 2 days)")
    sim.add_argument("--queue-limit", default=None, help="drop arrivals beyond this queue (reported)")
    sim.add_argument("--prior-error", default="1",
                     help="multiply the load-test capacity prior leadtime gets (0.5: the load test found half "
                          "the truth; 0.1 <= X <= 10)")
    sim.add_argument("--start", default=None, help="replay the trace from this second on (re-based to 0)")
    sim.add_argument("--duration", default=None, help="replay this many seconds of the trace")
    sim.add_argument("--scrape-interval", default="15", help="Prometheus scrape interval, seconds (default 15)")
    sim.add_argument("--spot-trace", default=None,
                     help='spot instances obtainable over time for the batch pool: {"metadata": {"gap_seconds": N}, '
                          '"data": [1, 1, 0, ...]} (default: drawn from the seed with the published rates)')
    sim.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    sim.add_argument("--plot", default=None, help="write a PNG: demand, replicas and p95 per policy")
    sim.set_defaults(func=_simulate)
    # argparse's own errors (a flag without its value) in one line too, as CliError prints them.
    sim.error = lambda message: _one_line_exit("simulate", message)  # type: ignore[method-assign]

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
    except (ValueError, TypeError) as err:
        raise CliError(str(err).splitlines()[0]) from None
    if not cold_start:
        return profile
    try:
        return profile.with_cold_start(read_cold_start(cold_start))
    except ValueError as err:
        raise CliError(f"--cold-start: {str(err).splitlines()[0]}") from None


def read_spot_trace(path: str):  # noqa: ANN201
    """`--spot-trace FILE`, read at the boundary; a bad file is one line naming the flag."""
    from leadtime.sim.lifecycle import load_spot_trace

    if not Path(path).is_file():
        raise CliError(f"--spot-trace: {path}: no such file")
    try:
        return load_spot_trace(path)
    except (ValueError, OSError) as err:
        raise CliError(f"--spot-trace: {str(err).splitlines()[0]}") from None


def read_cold_start(spec: str) -> ColdStart:
    """A cold-start spec; `empirical:FILE` is read here, at the boundary, so `replica/` stays pure."""
    if not spec.strip().startswith("empirical:"):
        return parse_cold_start(spec)
    path = Path(spec.strip()[len("empirical:"):])
    if not path.is_file():
        raise ValueError(f"{str(path)!r}: no such file (empirical:FILE, one duration in seconds a line)")
    values = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            values.append(float(text))
        except ValueError:
            raise ValueError(f"{path}:{line_no}: expected a duration in seconds, got {text!r}") from None
        if not (values[-1] >= 0 and values[-1] < float("inf")):
            raise ValueError(f"{path}:{line_no}: durations must be finite and >= 0, got {text!r}")
    return ColdStart.empirical(values, spec=spec.strip())


def _one_line_exit(command: str, message: str) -> None:
    print(f"leadtime {command}: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


def parse_number(flag: str, text: str, *, integer: bool = False, low: float | None = None,
                 high: float | None = None, low_inclusive: bool = True) -> float:
    """A flag's value as a finite number within bounds, or a CliError naming the flag."""
    bounds = " and ".join(part for part in (
        (f"{'>=' if low_inclusive else '>'} {low:g}" if low is not None else ""),
        (f"<= {high:g}" if high is not None else "")) if part)
    expected = f"{'an integer' if integer else 'a number'}{' ' + bounds if bounds else ''}"
    try:
        value = int(text) if integer else float(text)
    except (ValueError, OverflowError):
        raise CliError(f"{flag}: expected {expected}, got {text!r}") from None
    if not math.isfinite(value) or (low is not None and (value < low or (value == low and not low_inclusive))) \
            or (high is not None and value > high):
        raise CliError(f"{flag}: expected {expected}, got {text!r}")
    return value


@dataclass(frozen=True)
class SimulateOptions:
    """`leadtime simulate`'s numeric flags, checked."""

    rate_scale: float
    slo_p95_s: float
    tick_s: float | None
    queue_limit: int | None
    seed: int
    seeds: int
    prior_error: float
    start_s: float
    duration_s: float | None
    scrape_interval_s: float


def simulate_options(args: argparse.Namespace) -> SimulateOptions:
    def optional(flag: str, text: str | None, **bounds: Any) -> Any:
        return None if text is None else parse_number(flag, text, **bounds)

    return SimulateOptions(
        rate_scale=parse_number("--rate-scale", args.rate_scale, low=0, low_inclusive=False, high=1000),
        slo_p95_s=parse_number("--slo-p95-s", args.slo_p95_s, low=0, low_inclusive=False, high=86400),
        # Below 10 ms a tick resolves nothing a 1-s metrics scrape could see; above a minute it is
        # longer than the metrics window and the SLO window.
        tick_s=optional("--tick-s", args.tick_s, low=0.01, high=60),
        queue_limit=optional("--queue-limit", args.queue_limit, integer=True, low=1),
        seed=parse_number("--seed", args.seed, integer=True, low=0, high=2**32 - 1),
        seeds=parse_number("--seeds", args.seeds, integer=True, low=1, high=100),
        prior_error=parse_number("--prior-error", args.prior_error, low=0.1, high=10),
        start_s=optional("--start", args.start, low=0) or 0.0,
        duration_s=optional("--duration", args.duration, low=0, low_inclusive=False),
        # Prometheus scrapes no faster than every 0.1 s in practice, and a near-zero interval would ask
        # the simulator for an unbounded number of scrapes.
        scrape_interval_s=parse_number("--scrape-interval", args.scrape_interval, low=0.1, high=3600),
    )


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
    from leadtime.sim.traces import TraceError, load_trace

    options = simulate_options(args)
    profile = load_profile(args.profile, args.cold_start)
    names = [n.strip() for n in args.policy.split(",") if n.strip()]
    try:
        trace = load_trace(args.trace)
    except TraceError as err:
        raise CliError(str(err)) from None
    if options.start_s or options.duration_s is not None:
        if options.start_s >= trace.span_s:
            raise CliError(f"--start: {options.start_s:g} s is past the trace's end ({trace.span_s:g} s)")
        try:
            trace = trace.slice(options.start_s, options.duration_s)
        except TraceError as err:
            raise CliError(f"--start/--duration: {err}") from None
    spot_trace = read_spot_trace(args.spot_trace) if args.spot_trace else None
    scenarios = []
    for seed in range(options.seed, options.seed + options.seeds):
        try:
            scenario = make_scenario(trace, profile, rate_scale=options.rate_scale, slo_metric=args.slo_metric,
                                     slo_p95_s=options.slo_p95_s, seed=seed, tick_s=options.tick_s,
                                     queue_limit=options.queue_limit, prior_error=options.prior_error,
                                     spot_trace=spot_trace)
        except (TraceError, ValueError) as err:
            raise CliError(str(err).splitlines()[0]) from None
        scenario.config = dataclasses.replace(scenario.config, scrape_interval_s=options.scrape_interval_s)
        scenarios.append(scenario)
    scenario = scenarios[0]
    try:
        runs = policy_runs(names, scenario, args.sweep)
    except ValueError as err:
        raise CliError(str(err).splitlines()[0]) from None
    if options.seeds == 1:
        per_seed = {options.seed: _run_all(runs, scenario)}
    else:
        per_seed = _run_seeds(runs, scenarios, options.seed)
    results = per_seed[options.seed]
    doc = result_document(args.trace, profile, scenario, results,
                          per_seed=per_seed if options.seeds > 1 else None)
    doc["prior"] = {"replica_capacity_rps": scenario.config.policy_config.replica_capacity_rps,
                    "max_concurrency": scenario.config.policy_config.max_concurrency,
                    "prior_error": options.prior_error,
                    "reference_tokens": [profile.reference_input_tokens, profile.reference_output_tokens]}
    if options.start_s or options.duration_s is not None:
        doc["slice"] = {"start_s": options.start_s, "duration_s": options.duration_s}
    _print_table(doc)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n")
    if args.plot:
        try:
            from leadtime.sim.plot import plot_runs
        except ImportError:
            raise CliError("--plot: needs matplotlib (pip install matplotlib)") from None

        plot_runs(scenario, [r for r in results if r.timeline is not None], args.plot)
    return 0


def _run_seeds(runs: list[tuple[str, dict[str, Any]]], scenarios: list, first_seed: int) -> dict[int, list]:
    """Every seed runs the same (name, params), a --sweep's pass 2 chosen on the mean over seeds; the
    runs whose params come from each seed's scenario (static's replicas) are planned per seed."""
    from leadtime.sim.run import policy_runs
    from leadtime.sim.sweep import run_many, run_seeds

    shared = [(name, params) for name, params in runs if name != "static"]
    per_run = run_seeds(shared, scenarios, record_timeline=True)
    per_seed = {first_seed + i: [results[i] for results in per_run] for i in range(len(scenarios))}
    if len(shared) < len(runs):
        for i, scenario in enumerate(scenarios):
            per_seed[first_seed + i] += run_many(policy_runs(["static"], scenario, False), scenario)
    return per_seed


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


def result_document(trace: str, profile: ReplicaProfile, scenario, results: list,  # noqa: ANN001
                    per_seed: dict[int, list] | None = None) -> dict[str, Any]:
    """The JSON of a simulate run; with `per_seed` ({seed: results}) each run is the mean over seeds."""
    runs = ([r.to_json() for r in results] if per_seed is None
            else mean_over_seeds({seed: [r.to_json() for r in rs] for seed, rs in per_seed.items()}))
    return {
        "trace": str(trace),
        "profile": profile.name,
        "cold_start": profile.cold_start.spec,
        "slo": {"metric": scenario.config.slo_metric, "p95_s": scenario.config.slo_p95_s,
                "window_s": scenario.config.slo_window_s},
        "runs": runs,
    }


def _print_table(doc: dict[str, Any]) -> None:
    seeded = any("per_seed" in run for run in doc["runs"])
    print(f"trace {doc['trace']}  profile {doc['profile']}  cold start {doc['cold_start']}  "
          f"SLO p95 {doc['slo']['metric']} <= {doc['slo']['p95_s']} s")
    if seeded:
        print(f"mean over {max(len(run.get('per_seed', [])) for run in doc['runs'])} seeds; "
              "sd: standard deviation over seeds")
    print(f"{'policy':<12} {'params':<34} {'GPU-h':>9} {'x bound':>7} {'cost $':>10} {'win SLO':>8} {'req SLO':>8} "
          f"{'p95 s':>8} {'scales':>7} {'idle':>6} {'wall s':>7}" + (f" {'sd GPU-h':>9} {'sd win':>7}" if seeded else ""))
    for run in doc["runs"]:
        # the knobs that vary, in a sweep: target then behaviour, shortened to fit the column
        params = ",".join(f"{k.split('_')[0] if len(run['params']) > 1 else k}={v}" for k, v in run["params"].items())
        x_bound = "-" if run.get("x_bound") is None else f"{run['x_bound']:.2f}"
        spread = ""
        if seeded:
            spread = (f" {_sd(run, 'gpu_hours'):>9.2f} {_sd(run, 'slo_window_attainment'):>7.2%}")
        print(f"{run['policy']:<12} {params[:34]:<34} {run['gpu_hours']:>9.2f} {x_bound:>7} {run['cost_usd']:>10.2f} "
              f"{run['slo_window_attainment']:>8.2%} {run['slo_request_attainment']:>8.2%} "
              f"{run['p95_latency_s']:>8.2f} {run['scale_events']:>7g} {run['idle_gpu_share']:>6.1%} "
              f"{run['wall_s']:>7.2f}{spread}")
        if run["dropped"]:
            print(f"{'':<12} dropped {run['dropped']:g} requests")
        if run.get("unserved", 0) > 0.01 * run.get("requests", 0):
            print(f"{'':<12} left {run['unserved']:.0f} requests unfinished at the end (below the bound's class)")


def _sd(run: dict[str, Any], key: str) -> float:
    values = [seed_run[key] for seed_run in run.get("per_seed", []) if isinstance(seed_run.get(key), int | float)]
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def elapsed(start: float) -> float:
    return time.perf_counter() - start
