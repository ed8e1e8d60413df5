"""`make bench`: every scenario x policy (leadtime, hpa sweep, kpa sweep, clairvoyant, static) and the bound.

Writes one JSON per scenario to benchmarks/results/ (so `--only ID` re-runs one and the report keeps
the others), then docs/benchmarks.md and its plots in docs/img/, and prints the speed figures.

    python benchmarks/run.py                 # all 12 scenarios (many minutes on 2 cores)
    python benchmarks/run.py --quick         # CI smoke: two short scenarios
    python benchmarks/run.py --only azure-conv@120s
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from leadtime.sim.run import POLICY_NAMES, policy_runs, run_one  # noqa: E402

from benchmarks.scenarios import SCENARIO_IDS, SETUPS, build_scenario, spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
QUICK = ("azure-conv@120s", "mooncake-conversation@30s")
TIMELINE_SCENARIO = "azure-conv@120s"
SPEED_ONE = "servegen-m-mid@120s"  # 14-day ServeGen with leadtime alone: target < 60 s
SPEED_ALL = "azure-conv@120s"  # all five policies, one point each: target < 15 s
AIM_ATTAINMENT, AIM_RATIO, AIM_MAX_COLD_S = 0.99, 1.25, 120


def run_scenario(scenario_id: str) -> dict[str, Any]:
    s = spec(scenario_id)
    started = time.perf_counter()
    scenario = build_scenario(scenario_id)
    runs, timeline_runs = [], []
    for name, params in policy_runs(list(POLICY_NAMES), scenario, sweep=True):
        result = run_one(name, params, scenario, record_timeline=scenario_id == TIMELINE_SCENARIO)
        runs.append(result.to_json())
        print(f"  {scenario_id:28} {name:8} {_params(result.params):28} GPU-h {result.metrics.gpu_hours:9.2f} "
              f"win {result.metrics.slo_window_attainment:7.2%} wall {result.wall_s:6.1f}s", flush=True)
        first_hpa = name == "hpa" and not any(r.policy == "hpa" for r in timeline_runs)
        if scenario_id == TIMELINE_SCENARIO and (name in ("leadtime", "clairvoyant") or first_hpa):
            timeline_runs.append(result)
    if timeline_runs:
        from leadtime.sim.plot import plot_runs

        IMG.mkdir(parents=True, exist_ok=True)
        plot_runs(scenario, timeline_runs, IMG / "timeline-azure-conv-120s.png")
    doc = {
        "id": scenario_id, "trace": s.trace, "profile": s.profile, "cold_start": s.cold_start,
        "slo": {"metric": s.slo_metric, "p95_s": s.slo_p95_s, "window_s": scenario.config.slo_window_s},
        "rate_scale": s.rate_scale, "peak_replicas": s.peak_replicas, "peak_burst_replicas": s.peak_burst_replicas,
        "clairvoyant_plan_rounds": scenario.clairvoyant_plan.rounds, "wall_s": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{scenario_id}.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def _params(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


def speed_figures() -> dict[str, float]:
    """Wall seconds: leadtime alone on 14-day ServeGen; all five policies on Azure conv (scenario build included)."""
    figures = {}
    started = time.perf_counter()
    scenario = build_scenario(SPEED_ONE)
    run_one("leadtime", {}, scenario, record_timeline=False)
    figures["servegen_one_policy_s"] = time.perf_counter() - started
    started = time.perf_counter()
    scenario = build_scenario(SPEED_ALL)
    for name, params in policy_runs(list(POLICY_NAMES), scenario, sweep=False):
        run_one(name, params, scenario, record_timeline=False)
    figures["azure_conv_five_policies_s"] = time.perf_counter() - started
    return figures


# --- report ---------------------------------------------------------------------------------------

def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    runs = doc["runs"]
    by = {name: [r for r in runs if r["policy"] == name] for name in POLICY_NAMES}
    leadtime, clairvoyant = by["leadtime"][0], by["clairvoyant"][0]
    bound = by["bound"][0] if by.get("bound") else None
    dominating = [r for r in by["hpa"] + by["kpa"]
                  if r["slo_window_attainment"] >= leadtime["slo_window_attainment"]
                  and r["gpu_hours"] <= leadtime["gpu_hours"]]
    per_good = [r for r in by["hpa"] + by["kpa"] if r.get("gpu_seconds_per_request_in_slo") is not None]
    best_baseline = min(per_good, key=lambda r: r["gpu_seconds_per_request_in_slo"], default=None)
    return {"leadtime": leadtime, "clairvoyant": clairvoyant, "bound": bound, "dominating": dominating,
            "best_baseline": best_baseline,
            "ratio": leadtime["gpu_hours"] / clairvoyant["gpu_hours"] if clairvoyant["gpu_hours"] else float("nan")}


def x_bound(run: dict[str, Any], bound: dict[str, Any] | None) -> str:
    """GPU-hours over the fluid bound's ('-' for results from before the bound)."""
    value = run.get("x_bound")
    if value is None and bound is not None and bound["gpu_hours"]:
        value = run["gpu_hours"] / bound["gpu_hours"]
    return "-" if value is None else f"{value:.2f}"


def _per_good(run: dict[str, Any] | None) -> str:
    """GPU-seconds per request within the SLO, for the tables ('-' for old results without it)."""
    value = None if run is None else run.get("gpu_seconds_per_request_in_slo")
    return "-" if value is None else f"{value:.2f}"


def render(docs: list[dict[str, Any]], speed: dict[str, float] | None) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python benchmarks/run.py`); do not edit by hand. Scenarios are defined in",
        "`benchmarks/scenarios.py`: four traces x cold starts 30 s, 120 s and 600 s (fixed), each trace at a",
        "rate scale derived from its busiest minute and the per-replica capacity its SLO allows, so that the",
        "busiest minute needs about 25 replicas. The simulator and the metrics are described in",
        "[simulator.md](simulator.md).",
        "",
        "Columns: **GPU-h** billed GPU-hours (cold starts included); **x bound** GPU-hours over the fluid lower",
        "bound's (no run that serves every request can go below 1.00; see simulator.md, \"The lower bound\");",
        "**x clairvoyant** GPU-hours over the greedy clairvoyant planner's (a reference point, not a bound);",
        "**win** share of 1-minute windows whose p95 meets the SLO; **req** share of requests within the",
        "target; **p95** over the whole run; **scales** changes of the desired replica count. **dominated?**:",
        "does any hpa or kpa sweep point have >= window attainment and <= GPU-hours than leadtime (the Must).",
        "**GPU-s/req** GPU-seconds billed per request served within its target, what users pay for; the",
        "summary compares leadtime with the hpa or kpa sweep point that is cheapest by that measure.",
        "The per-scenario tables list every sweep point.",
        "",
        "## Scenarios",
        "",
        "| trace | profile | SLO | why this SLO | rate scale | replicas, busiest minute / 10 s |",
        "|---|---|---|---|---:|---|",
        *_scenario_rows(docs),
        "",
        "## Summary",
        "",
        "| scenario | SLO | leadtime GPU-h | x bound | x clairvoyant | win | req | dominated? | aim (>= 99% win, <= 1.25x clairvoyant, cold <= 120 s) "
        "| GPU-s/req: leadtime | best hpa/kpa (its win) | clairvoyant |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for doc in docs:
        summary = summarise(doc)
        lt = summary["leadtime"]
        cold_s = int(doc["cold_start"].rstrip("s"))
        met = lt["slo_window_attainment"] >= AIM_ATTAINMENT and summary["ratio"] <= AIM_RATIO
        aim = ("met" if met else "missed") if cold_s <= AIM_MAX_COLD_S else "n/a (600 s)"
        dominated = "no" if not summary["dominating"] else f"**yes** ({len(summary['dominating'])} points)"
        lines.append(f"| {doc['id']} | {doc['slo']['metric']} <= {doc['slo']['p95_s']:g} s | {lt['gpu_hours']:.1f} | "
                     f"{x_bound(lt, summary['bound'])} | {summary['ratio']:.2f} | {lt['slo_window_attainment']:.1%} | {lt['slo_request_attainment']:.1%} | "
                     f"{dominated} | {aim} | {_per_good(lt)} | {_baseline_per_good(summary['best_baseline'])} | "
                     f"{_per_good(summary['clairvoyant'])} |")
    if speed:
        lines += ["", "## Speed", "",
                  f"- 14-day ServeGen m-mid (`{SPEED_ONE}`), leadtime alone: **{speed['servegen_one_policy_s']:.1f} s** "
                  "(target < 60 s)",
                  f"- Azure conv (`{SPEED_ALL}`), all five policies once each: **{speed['azure_conv_five_policies_s']:.1f} s** "
                  "(target < 15 s)",
                  "- measured on 2 shared cores, scenario build included; the clairvoyant's time is its planning (a few",
                  "  simulator runs, see simulator.md)."]
    lines += ["", "## Plots", "",
              "![cost/attainment frontier per scenario](img/frontier.png)", "",
              "Each panel: GPU-hours (x) against window attainment (y) for the hpa and kpa sweeps (lines), leadtime",
              "(star), the clairvoyant planner (diamond), static (square) and the fluid bound (dotted line: nothing",
              "that serves every request is left of it). Up and to the left is better.", "",
              f"![timeline of {TIMELINE_SCENARIO}](img/timeline-azure-conv-120s.png)", "",
              f"Timeline of `{TIMELINE_SCENARIO}`: demand, replicas (ready; dotted: ready + starting) and the p95 per",
              "minute for leadtime, the clairvoyant and hpa at its first sweep point.", ""]
    for doc in docs:
        lines += _scenario_table(doc)
    return "\n".join(lines) + "\n"


def _baseline_per_good(run: dict[str, Any] | None) -> str:
    value = _per_good(run)
    if value == "-" or run is None:
        return value
    return f"{value} ({run['policy']} {_params(run['params'])}, {run['slo_window_attainment']:.1%})"


def _scenario_rows(docs: list[dict[str, Any]]) -> list[str]:
    rows, seen = [], set()
    for doc in docs:
        if doc["trace"] in seen:
            continue
        seen.add(doc["trace"])
        setup = SETUPS[doc["trace"]]
        rows.append(f"| {doc['trace']} | {doc['profile']} | p95 {setup.slo_metric} <= {setup.slo_p95_s:g} s | {setup.why} | "
                    f"{doc['rate_scale']:g} | {doc['peak_replicas']} / {doc['peak_burst_replicas']} |")
    return rows


def _scenario_table(doc: dict[str, Any]) -> list[str]:
    summary = summarise(doc)
    clairvoyant_h = summary["clairvoyant"]["gpu_hours"] or float("nan")
    lines = [f"## {doc['id']}", "",
             f"Trace `{doc['trace']}` x{doc['rate_scale']:g}, profile `{doc['profile']}`, cold start {doc['cold_start']}, "
             f"SLO p95 {doc['slo']['metric']} <= {doc['slo']['p95_s']:g} s; busiest minute needs "
             f"{doc['peak_replicas']} replicas, busiest 10 s {doc['peak_burst_replicas']}; clairvoyant planned in "
             f"{doc['clairvoyant_plan_rounds']} round(s).", "",
             "| policy | params | GPU-h | x bound | x clairvoyant | win | req | GPU-s/req | p95 s | scales | idle | dominated? |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in doc["runs"]:
        dominated = ""
        if run["policy"] == "leadtime":
            dominated = "no" if not summary["dominating"] else "**yes**"
        elif run in summary["dominating"]:
            dominated = "dominates leadtime"
        lines.append(f"| {run['policy']} | {_params(run['params'])} | {run['gpu_hours']:.2f} | "
                     f"{x_bound(run, summary['bound'])} | {run['gpu_hours'] / clairvoyant_h:.2f} | {run['slo_window_attainment']:.1%} | "
                     f"{run['slo_request_attainment']:.1%} | {_per_good(run)} | {run['p95_latency_s']:.2f} | "
                     f"{run['scale_events']} | "
                     f"{run['idle_gpu_share']:.0%} | {dominated} |")
    return [*lines, ""]


def plot_frontiers(docs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    rows = (len(docs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, doc in zip(axes.flat, docs, strict=False):
        runs = doc["runs"]
        for name, color in (("hpa", "tab:blue"), ("kpa", "tab:orange")):
            points = sorted((r["gpu_hours"], r["slo_window_attainment"]) for r in runs if r["policy"] == name)
            if points:
                ax.plot(*zip(*points, strict=True), "o-", ms=3, lw=0.8, color=color, label=name)
        for name, marker, color in (("leadtime", "*", "tab:green"), ("clairvoyant", "D", "black"), ("static", "s", "grey")):
            for r in runs:
                if r["policy"] == name:
                    ax.plot(r["gpu_hours"], r["slo_window_attainment"], marker, ms=10 if marker == "*" else 6,
                            color=color, label=name)
        for r in runs:
            if r["policy"] == "bound":
                ax.axvline(r["gpu_hours"], color="black", lw=0.8, ls=":", label="bound")
        ax.axhline(AIM_ATTAINMENT, color="red", lw=0.6, ls="--")
        ax.set_title(doc["id"], fontsize=9)
        ax.set_xlabel("GPU-hours", fontsize=8)
        ax.set_ylabel("window attainment", fontsize=8)
        ax.set_ylim(max(0.0, min(r["slo_window_attainment"] for r in runs) - 0.02), 1.005)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(docs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _renamed(doc: dict[str, Any]) -> dict[str, Any]:
    """Results written before the greedy planner was renamed (policy "oracle") read as "clairvoyant"."""
    if "oracle_plan_rounds" in doc:
        doc["clairvoyant_plan_rounds"] = doc.pop("oracle_plan_rounds")
    for run in doc.get("runs", []):
        if run.get("policy") == "oracle":
            run["policy"] = "clairvoyant"
    return doc


def write_report(speed: dict[str, float] | None) -> None:
    order = {sid: i for i, sid in enumerate(SCENARIO_IDS)}
    docs = [_renamed(json.loads(p.read_text())) for p in RESULTS.glob("*.json")]
    docs = sorted((d for d in docs if d.get("id") in order), key=lambda d: order[d["id"]])
    if speed is None and (RESULTS / "speed.json").exists():
        speed = json.loads((RESULTS / "speed.json").read_text())
    if not docs:
        return
    IMG.mkdir(parents=True, exist_ok=True)
    plot_frontiers(docs, IMG / "frontier.png")
    DOC.write_text(render(docs, speed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} (CI smoke)")
    parser.add_argument("--only", action="append", default=[], help="scenario id, e.g. azure-conv@120s (repeatable)")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed figures")
    parser.add_argument("--report", action="store_true", help="only re-render docs/benchmarks.md from benchmarks/results/")
    args = parser.parse_args(argv)
    if args.report:
        write_report(None)
        return 0
    ids = [i for only in args.only for i in only.split(",") if i] or (list(QUICK) if args.quick else list(SCENARIO_IDS))
    for sid in ids:
        spec(sid)  # unknown ids fail before anything runs
    print(f"{len(ids)} scenario(s): {', '.join(ids)}", flush=True)
    for sid in ids:
        doc = run_scenario(sid)
        summary = summarise(doc)
        print(f"{sid}: leadtime x{x_bound(summary['leadtime'], summary['bound'])} bound, "
              f"x{summary['ratio']:.2f} clairvoyant, win {summary['leadtime']['slo_window_attainment']:.2%}, "
              f"dominated: {'yes' if summary['dominating'] else 'no'} ({doc['wall_s']} s)", flush=True)
    speed = None
    if not args.no_speed and not args.quick and not args.only:
        speed = {k: round(v, 1) for k, v in speed_figures().items()}
        (RESULTS / "speed.json").write_text(json.dumps(speed) + "\n")
        print(f"speed: 14-day ServeGen, leadtime alone: {speed['servegen_one_policy_s']:.1f} s (target < 60 s); "
              f"Azure conv, five policies: {speed['azure_conv_five_policies_s']:.1f} s (target < 15 s)")
    write_report(speed)
    print(f"wrote {DOC.relative_to(ROOT)} and {IMG.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
