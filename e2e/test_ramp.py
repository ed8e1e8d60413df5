"""Scenario 2, a load ramp: leadtime scales up a cold start ahead of the breach and holds the p95 SLO;
the same ModelDeployment with forecasting off, on the same ramp at the same time, breaks it.

Both ModelDeployments run side by side in one namespace under one operator, each with its own emulator
replaying the same trace (same seed), so they see exactly the same requests at the same wall times and
the test takes the time of one ramp, not two.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from harness import GPU, condition, is_ready
from leadtime.emulator.core import EmulatorCore
from leadtime.emulator.workload import load_profile, load_requests
from operator_process import (
    apply,
    decision_lines,
    emulator_process,
    events,
    fast,
    load_example,
    operator_process,
)
from test_operator_metrics import crds, processes  # noqa: F401 - pytest fixtures, shared with that module

pytestmark = pytest.mark.e2e

MODEL_LABEL = "serving.leadtime.dev/model"
COLD_START_S = 20
SLO_P95_S = 1.0
WINDOW_S = 10  # the SLO is judged per window of this many seconds
REQUIRED_ATTAINMENT = 0.95
FLOOR = 2
MAX_REPLICAS = 9

# The trace, in wall seconds (time scale 1: the ramp is already short, compressing it further would only
# shrink the cold start relative to it). Flat, then demand grows 4x exponentially — gently at first, so
# a forecaster can see it coming, and steep at the end, where a reactive autoscaler falls a cold start
# behind — then holds at the peak so that the reactive pool can catch up before the trace ends.
FLAT_S, RAMP_S, HOLD_S = 60, 90, 50
BASE_RPS, PEAK_RPS = 2.0, 10.0
RAMP_STEP_S = 5
INPUT_TOKENS, OUTPUT_TOKENS = 256, 64

# A deliberately slow replica (8 sequences at once, ~2.1 requests/s when full) so that a few requests per
# second already need several replicas and the emulator stays cheap; TTFT ~0.07 s when nothing waits.
PROFILE = {
    "name": "e2e-ramp", "prefill_tokens_per_s": 4000.0, "decode_base_s": 0.02, "decode_per_seq_s": 0.004,
    "max_num_seqs": 8, "kv_cache_tokens": 100_000, "gpus_per_replica": 1,
}
# What the operator is told about one replica (a little under the saturation throughput).
PRIOR_RPS_PER_REPLICA = 1.8


def write_ramp_trace(path: Path) -> Path:
    """A canonical rate CSV: FLAT_S at BASE_RPS, an exponential ramp in RAMP_STEP_S steps, HOLD_S at PEAK_RPS.

    Every request has the same lengths (p95 columns equal to the means: no spread), so the only thing
    that outgrows the pool is the ramp; with a rate trace's default spread, the long prompts of the
    flat minute alone break the TTFT target on the pool before the ramp, and the test proves nothing.
    """
    fixed = f"{INPUT_TOKENS},{OUTPUT_TOKENS},{INPUT_TOKENS},{OUTPUT_TOKENS}"
    rows = ["start_s,duration_s,rate_rps,input_tokens,output_tokens,input_p95,output_p95",
            f"0,{FLAT_S},{BASE_RPS},{fixed}"]
    steps = RAMP_S // RAMP_STEP_S
    for i in range(steps):
        rate = BASE_RPS * (PEAK_RPS / BASE_RPS) ** ((i + 0.5) / steps)
        rows.append(f"{FLAT_S + i * RAMP_STEP_S},{RAMP_STEP_S},{rate:.3f},{fixed}")
    rows.append(f"{FLAT_S + RAMP_S},{HOLD_S},{PEAK_RPS},{fixed}")
    path.write_text("\n".join(rows) + "\n")
    return path


def ramp_spec(name: str, *, forecast: bool) -> dict:
    md = fast(load_example("llama-8b.yaml"), cold_start=f"{COLD_START_S}s", interval_s=2)
    md["metadata"]["name"] = name
    spec = md["spec"]
    spec["slo"] = {"latency": "ttft", "p95Seconds": SLO_P95_S}
    spec["replicas"] = {"warmFloor": FLOOR, "max": MAX_REPLICAS}
    spec["capacity"].update(maxConcurrency=PROFILE["max_num_seqs"], requestsPerSecondPerReplica=PRIOR_RPS_PER_REPLICA)
    # No scale-down during the test: the scenario is about the way up.
    spec["scaleDown"] = {"stabilizationSeconds": 900, "costAware": False}
    spec["metrics"] = {"window": "15s"}
    spec["forecast"] = {"enabled": forecast}
    return md


def free_on_demand_gpus(cluster) -> int:
    """GPUs of the on-demand nodes not requested by any live pod (other tests may share the cluster)."""
    nodes = {n.metadata.name: int(n.status.allocatable.get(GPU, "0")) for n in cluster.nodes("on-demand")}
    used = 0
    for pod in cluster.core.list_pod_for_all_namespaces(field_selector="status.phase!=Succeeded").items:
        if pod.spec.node_name in nodes and pod.status.phase != "Failed":
            used += sum(int((c.resources.requests or {}).get(GPU, "0")) for c in pod.spec.containers)
    return sum(nodes.values()) - used


def emulator_gauge(port: int, name: str) -> float | None:
    """One unlabelled-per-pod gauge of an emulator's own /metrics (trace time, finished)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def p95_per_window(prom, namespace: str, name: str, start_s: float, end_s: float) -> list[tuple[float, float]]:
    """(window end, p95 TTFT) for consecutive WINDOW_S windows in [start_s, end_s], read from Prometheus.

    Windows with no finished request (NaN) are left out: there is nothing to judge in them.
    """
    query = (
        "histogram_quantile(0.95, sum by (le) (increase(vllm:time_to_first_token_seconds_bucket"
        f'{{namespace="{namespace}",model_deployment="{name}",pool="interactive"}}[{WINDOW_S}s])))'
    )
    result = prom.custom_query_range(
        query, start_time=datetime.fromtimestamp(start_s + WINDOW_S, UTC),
        end_time=datetime.fromtimestamp(end_s, UTC), step=str(WINDOW_S),
    )
    values = result[0]["values"] if result else []
    return [(float(t), float(v)) for t, v in values if not math.isnan(float(v))]


def attainment(windows: list[tuple[float, float]]) -> float:
    return sum(1 for _, p95 in windows if p95 <= SLO_P95_S) / len(windows)


def counterfactual_breach_s(trace: Path, profile: Path, replicas: int, seed: int) -> float | None:
    """Trace second at which the SLO breaks if the pool stayed at `replicas` Ready replicas throughout.

    The same replica model and the same requests (same seed) as the emulator, with no autoscaler. The
    SLO is broken at the end of the first WINDOW_S span of arrivals (sliding by one second) whose p95
    TTFT is over the SLO; None if there is none.
    """
    core = EmulatorCore(load_requests(str(trace), seed=seed), load_profile(str(profile)), time_scale=1.0)
    core.sync_pods({f"pod-{i}": "interactive" for i in range(replicas)})
    core.advance_to(core.duration_s + 300)
    served = sorted(((r.arrival_s, r.ttft_s) for r in core._finished), key=lambda pair: pair[0])
    for end_s in range(WINDOW_S, int(core.duration_s) + 1):
        ttfts = sorted(ttft for arrival_s, ttft in served if end_s - WINDOW_S <= arrival_s < end_s)
        if ttfts and ttfts[math.ceil(0.95 * len(ttfts)) - 1] > SLO_P95_S:
            return float(end_s)
    return None


def event_time_s(event) -> float:
    stamp = event.event_time or event.last_timestamp or event.first_timestamp
    return stamp.timestamp()


@pytest.mark.timeout(600)
def test_ramp_leadtime_scales_a_cold_start_ahead_and_holds_the_slo_reactive_breaks_it(
    cluster, namespace, crds, processes, tmp_path  # noqa: F811 - fixtures
):
    """(a) leadtime's first scale-up after the ramp begins comes at least one cold start before the SLO
    would break. "Would break" is computed, not guessed: the emulator's own replica model replays the
    same requests (same trace, same seed) over the replicas that were Ready when the ramp began, held
    fixed, and the end of the first WINDOW_S span of arrivals whose p95 TTFT exceeds the SLO is the
    breach. A replica asked for later than one cold start before that moment is Ready after it.
    The reactive run's first breached window is reported alongside as the observed counterpart.
    (b) leadtime's p95 TTFT, per WINDOW_S window over the whole trace, read from Prometheus, is within
    the SLO in at least 95% of windows. (c) the same spec with spec.forecast.enabled=false, replaying the
    same trace at the same time, is within the SLO in fewer than 95% of windows.
    """
    from prometheus_api_client import PrometheusConnect

    if cluster.profile != "kwok":
        pytest.skip("needs the emulator and cold starts from the pod annotation (kwok)")
    if not cluster.prometheus_url or cluster.prometheus_targets_dir is None:
        pytest.skip("needs the local Prometheus with a file_sd targets directory")

    # Both pools may reach MAX_REPLICAS one-GPU replicas; a Pending replica would spoil the comparison.
    cluster.wait_for(lambda: free_on_demand_gpus(cluster) >= 2 * MAX_REPLICAS, 120,
                     f"{2 * MAX_REPLICAS} free on-demand GPUs", namespace)
    trace = write_ramp_trace(tmp_path / "ramp.csv")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    seed = 3
    runs = {"ramp-leadtime": ramp_spec("ramp-leadtime", forecast=True),
            "ramp-reactive": ramp_spec("ramp-reactive", forecast=False)}

    operator = operator_process(cluster, namespace, tmp_path).start()
    processes.append(operator)
    for md in runs.values():
        apply(cluster, namespace, md)
    for name in runs:
        cluster.wait_for_pods(namespace, f"{MODEL_LABEL}={name}", FLOOR, timeout_s=COLD_START_S + 60)

    emulators = {}
    for name in runs:
        emulator = emulator_process(
            cluster, namespace, name, trace, tmp_path,
            extra=("--profile", str(profile), "--seed", str(seed), "--wait-for-ready", str(FLOOR)),
        ).start()
        processes.append(emulator)
        emulators[name] = emulator

    # Where trace second 0 falls on the wall clock, for each emulator.
    trace_start_s = {}
    for name, emulator in emulators.items():
        def started(port=emulator.port):
            trace_s = emulator_gauge(port, "leadtime_emulator_trace_time_seconds")
            return time.time() - trace_s if trace_s else None

        trace_start_s[name] = cluster.wait_for(started, 60, f"the {name} emulator to start its replay", namespace)
    duration_s = FLAT_S + RAMP_S + HOLD_S

    summaries = {}
    for name in runs:
        path = tmp_path / f"emulator-{name}-summary.json"
        cluster.wait_for(path.exists, duration_s + 180, f"the {name} emulator to replay the whole trace",
                         namespace, interval_s=2)
        summaries[name] = json.loads(path.read_text())
        assert summaries[name]["lost"] == 0, f"{name}: {summaries[name]}"

    prom = PrometheusConnect(url=cluster.prometheus_url, disable_ssl=True)
    windows = {}
    for name in runs:
        start_s, end_s = trace_start_s[name], trace_start_s[name] + duration_s

        def scraped_to_the_end(name=name, end_s=end_s):
            newest = prom.custom_query(
                f'max(timestamp(leadtime_emulator_trace_time_seconds{{namespace="{namespace}",model_deployment="{name}"}}))')
            return newest and float(newest[0]["value"][1]) >= end_s

        cluster.wait_for(scraped_to_the_end, 60, f"Prometheus to scrape {name} past the end of the trace", namespace)
        windows[name] = p95_per_window(prom, namespace, name, start_s, end_s)
        assert len(windows[name]) >= duration_s // WINDOW_S - 2, f"{name}: too few windows with data {windows[name]}"
    held = {name: attainment(w) for name, w in windows.items()}
    report = {name: [round(p, 2) for _, p in w] for name, w in windows.items()}
    print(f"attainment {held}; p95 per {WINDOW_S} s window: {report}")

    # (a) The scale-up ahead of the breach.
    ramp_start_s = trace_start_s["ramp-leadtime"] + FLAT_S
    decisions = decision_lines(operator)
    # Nothing scales down during the test (long stabilisation), so the pods Ready at the start of the ramp
    # are still there with the same Ready condition.
    replicas_before_ramp = sum(
        1 for pod in cluster.pods(namespace, f"{MODEL_LABEL}=ramp-leadtime")
        if is_ready(pod) and condition(pod, "Ready").last_transition_time.timestamp() <= ramp_start_s)
    breach_trace_s = counterfactual_breach_s(trace, profile, replicas_before_ramp, seed)
    assert breach_trace_s is not None and breach_trace_s > FLAT_S, (
        f"the ramp never outgrows the {replicas_before_ramp} replicas leadtime had before it "
        f"(breach at {breach_trace_s}): the scenario proves nothing; make the ramp higher")
    breach_s = trace_start_s["ramp-leadtime"] + breach_trace_s
    ups = sorted((e for e in events(cluster, namespace, "ramp-leadtime")
                  if e.reason == "ScaledUp" and event_time_s(e) >= ramp_start_s), key=event_time_s)
    assert ups, "no scale-up during the ramp"
    first_up = ups[0]
    lead_s = breach_s - event_time_s(first_up)
    reactive_breaches = [t for t, p95 in windows["ramp-reactive"] if p95 > SLO_P95_S]
    reactive_breach = (f"{reactive_breaches[0] - trace_start_s['ramp-reactive'] - FLAT_S:.0f} s"
                       if reactive_breaches else "never")
    print(f"{replicas_before_ramp} replicas before the ramp; SLO would break {breach_trace_s - FLAT_S:.0f} s into "
          f"the ramp; first scale-up {event_time_s(first_up) - ramp_start_s:.1f} s into it ({first_up.message}); "
          f"lead {lead_s:.1f} s (cold start {COLD_START_S} s); the reactive run's first window over the SLO "
          f"ended {reactive_breach} into the ramp")
    assert lead_s >= COLD_START_S, (
        f"first scale-up only {lead_s:.1f} s before the breach, less than a {COLD_START_S} s cold start: "
        f"{first_up.message}")

    # (b) leadtime holds the SLO; (c) the reactive configuration on the same ramp does not.
    assert held["ramp-leadtime"] >= REQUIRED_ATTAINMENT, f"leadtime p95 per window {report['ramp-leadtime']}"
    assert held["ramp-reactive"] < REQUIRED_ATTAINMENT, (
        f"forecast off held the SLO too ({held['ramp-reactive']:.0%}): the ramp does not show a difference; "
        f"p95 per window {report['ramp-reactive']}")
    peak = max(d["replicas"]["interactive"] for d in decisions if d["name"] == "ramp-leadtime")
    assert peak <= MAX_REPLICAS
