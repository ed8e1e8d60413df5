"""`make demo`: a real trace replayed against a ModelDeployment on the local cluster, watched live.

Brings the local cluster up (or reuses it), installs the CRD, starts the emulator and the operator as
child processes, applies a demo variant of examples/llama-8b.yaml, prints a table every few seconds and
writes a PNG timeline at the end. Everything is compressed by --time-scale (default 10): the emulated
world, the cold starts and the ModelDeployment's time constants alike, so the operator makes the same
decisions it would make in real time, ten times faster. The table and the plot show trace time and
trace units (docs/demo.md).

Run from a checkout: `make demo`, or `python -m leadtime.demo --help`.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leadtime.emulator.pods import MODEL_LABEL, POOL_LABEL
from leadtime.policy.types import BATCH, BATCH_ONDEMAND, INTERACTIVE
from leadtime.replica import ReplicaProfile, get_profile

NAMESPACE = "leadtime-demo"
EMULATOR_PORT = 19400
OPERATOR_METRICS_PORT = 19480
COLD_START_ANNOTATION = "leadtime.dev/cold-start"
GROUP, VERSION, PLURAL = "serving.leadtime.dev", "v1alpha1", "modeldeployments"
# The replay is capped at this many wall minutes (the issue asks for at most 10).
MAX_WALL_MINUTES = 10.0
# A replica is sized to run at this fraction of its saturation throughput: the prior the demo gives the
# operator (requestsPerSecondPerReplica). Above ~0.8 the prefill queue makes TTFT climb steeply.
SUSTAINABLE_UTILISATION = 0.75
# Preferred demo traces, first match wins (benchmarks/traces/ is the project's own benchmark data).
TRACE_PREFERENCE = ("azure-conv", "azure_conv", "conv", "azure")


class DemoError(Exception):
    """Something the user can fix (missing binary, port taken, no trace): one line, exit code 2."""


# --------------------------------------------------------------------------------------------------
# Pure parts: the demo's ModelDeployment, samples, the table, the plot.


@dataclass(frozen=True)
class Scaling:
    """How the demo compresses time; every knob of the spec that is a duration or a rate goes through it."""

    time_scale: float
    cold_start_trace_s: float
    slo_trace_s: float
    capacity_trace_rps: float

    def wall(self, trace_s: float) -> float:
        return trace_s / self.time_scale


def arrivals_query() -> str:
    """Arrival rate from the emulator's arrivals counter: what the gateway sees, before any queueing.

    The API's default reads completions (vLLM has no arrivals counter), which lags demand by the queue
    exactly when it matters; where an arrivals counter exists, reading it is better.
    """
    return (
        'sum(rate(leadtime_emulator_requests_arrived_total{namespace="${namespace}",'
        'model_deployment="${name}",pool=~"${pools}"}[${window}]))'
    )


def initial_replicas(first_minute_rps: float, capacity_rps: float) -> int:
    """Replicas a deployment already running at the trace's first minute would have."""
    return max(1, math.ceil(first_minute_rps / capacity_rps)) if capacity_rps > 0 else 1


def demo_manifest(
    base: Mapping[str, Any], *, name: str, namespace: str, prometheus_url: str, scaling: Scaling,
    batch: bool = False, warm_start_replicas: int | None = None,
) -> dict[str, Any]:
    """The example ModelDeployment with its durations and rates moved onto the compressed clock.

    `warm_start_replicas` raises the warm floor for the start only (the demo lowers it again once the
    replay runs), so the replay begins where a running deployment would be rather than from one replica.
    """
    doc = copy.deepcopy(dict(base))
    doc.setdefault("metadata", {})
    doc["metadata"]["name"] = name
    doc["metadata"]["namespace"] = namespace
    spec = doc.setdefault("spec", {})
    k = scaling.time_scale
    cold_wall_s = scaling.wall(scaling.cold_start_trace_s)
    model = spec.setdefault("model", {})
    model.setdefault("podAnnotations", {})[COLD_START_ANNOTATION] = f"{round(cold_wall_s * 1000)}ms"
    spec.setdefault("slo", {})["p95Seconds"] = round(scaling.wall(scaling.slo_trace_s), 4)
    capacity = spec.setdefault("capacity", {})
    capacity["coldStartSeconds"] = round(cold_wall_s, 3)
    capacity["requestsPerSecondPerReplica"] = round(scaling.capacity_trace_rps * k, 3)
    scale_down = spec.setdefault("scaleDown", {})
    scale_down["stabilizationSeconds"] = max(1, round(scale_down.get("stabilizationSeconds", 300) / k))
    # A removed replica drains on the compressed clock too: 600 trace seconds of grace would hold its
    # GPU Terminating for ten wall minutes of a six-minute replay.
    drain = spec.setdefault("drain", {})
    grace_s = max(1, round(drain.get("terminationGracePeriodSeconds", 600) / k))
    drain["terminationGracePeriodSeconds"] = grace_s
    drain["preStopSleepSeconds"] = min(grace_s, round(drain.get("preStopSleepSeconds", 10) / k))
    # Integer seconds in the API: 5 s of trace time is 0.5 s of wall time, so the operator ticks every
    # wall second (10 trace seconds at x10), the finest the field allows.
    spec["controlIntervalSeconds"] = max(1, round(spec.get("controlIntervalSeconds", 5) / k))
    metrics = spec.setdefault("metrics", {})
    metrics["prometheusUrl"] = prometheus_url
    # A one-minute trace window, but never under 10 wall seconds: Prometheus scrapes every second and
    # rate() needs several samples to be more than noise.
    metrics["window"] = f"{max(10, round(60 / k))}s"
    metrics.setdefault("queries", {})["arrivalRate"] = arrivals_query()
    if warm_start_replicas is not None:
        replicas = spec.setdefault("replicas", {})
        replicas["warmFloor"] = max(int(replicas.get("warmFloor", 1)), warm_start_replicas)
        replicas["max"] = max(int(replicas.get("max", 20)), replicas["warmFloor"])
    if batch:
        pools = spec.setdefault("pools", {})
        pools.setdefault("batch", {})["enabled"] = True
        deadline = pools["batch"].get("deadlineSeconds", 3600.0)
        pools["batch"]["deadlineSeconds"] = round(deadline / k, 3)
        fallback = pools["batch"].setdefault("onDemandFallback", {})
        fallback["afterPendingSeconds"] = round(fallback.get("afterPendingSeconds", 120.0) / k, 3)
    return doc


def demo_profile(base: ReplicaProfile, max_concurrency: int) -> ReplicaProfile:
    """The emulated replica, with the batch limit the example passes to vLLM (--max-num-seqs)."""
    return dataclasses.replace(base, name=f"{base.name}-demo", max_num_seqs=max_concurrency)


@dataclass
class Sample:
    """One row of the live table, in trace units (seconds of trace, requests per trace second)."""

    wall_s: float
    trace_s: float | None = None
    demand_rps: float | None = None
    batch_demand_rps: float | None = None
    served_rps: float | None = None
    queue: float | None = None
    p95_ttft_s: float | None = None
    forecast_rps: float | None = None
    ready: dict[str, int] = field(default_factory=dict)
    starting: dict[str, int] = field(default_factory=dict)
    desired: dict[str, int] = field(default_factory=dict)
    dollars_per_hour: float | None = None
    reason: str = ""


def _num(value: float | None, fmt: str, width: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    return format(value, fmt).rjust(width)


def _clock(trace_s: float | None) -> str:
    if trace_s is None:
        return "  -  "
    minutes, seconds = divmod(int(trace_s), 60)
    return f"{minutes:02d}:{seconds:02d}"


TABLE_HEADER = (
    "trace  demand  served  queue  p95ttft  interactive r/s/d  batch r/s   $/h    last decision"
)


def format_row(sample: Sample, reason_width: int = 48) -> str:
    def pool(p: str, with_desired: bool) -> str:
        r, s = sample.ready.get(p, 0), sample.starting.get(p, 0)
        return f"{r}/{s}/{sample.desired.get(p, 0)}" if with_desired else f"{r}/{s}"

    batch = f"{sample.ready.get(BATCH, 0) + sample.ready.get(BATCH_ONDEMAND, 0)}/" \
            f"{sample.starting.get(BATCH, 0) + sample.starting.get(BATCH_ONDEMAND, 0)}"
    reason = sample.reason if len(sample.reason) <= reason_width else sample.reason[: reason_width - 1] + "…"
    return (
        f"{_clock(sample.trace_s)}  {_num(sample.demand_rps, '.1f', 6)}  {_num(sample.served_rps, '.1f', 6)}  "
        f"{_num(sample.queue, '.0f', 5)}  {_num(sample.p95_ttft_s, '.2f', 7)}  "
        f"{pool(INTERACTIVE, True):>17}  {batch:>9}  {_num(sample.dollars_per_hour, '.2f', 6)}    {reason}"
    )


@dataclass(frozen=True)
class DemoSummary:
    samples: int
    slo_trace_s: float
    windows_with_p95: int
    windows_within_slo: int
    max_ready: int
    gpu_hours: float  # trace hours x replicas, from the samples
    mean_dollars_per_hour: float | None

    @property
    def slo_share(self) -> float | None:
        return self.windows_within_slo / self.windows_with_p95 if self.windows_with_p95 else None


def summarize(samples: Sequence[Sample], slo_trace_s: float) -> DemoSummary:
    with_p95 = [s for s in samples if s.p95_ttft_s is not None and s.trace_s]
    within = [s for s in with_p95 if s.p95_ttft_s is not None and s.p95_ttft_s <= slo_trace_s]
    gpu_hours = 0.0
    timed = [s for s in samples if s.trace_s is not None]
    for a, b in zip(timed, timed[1:], strict=False):
        dt = max(0.0, (b.trace_s or 0.0) - (a.trace_s or 0.0))
        gpu_hours += sum(a.ready.values()) * dt / 3600.0
    spend = [s.dollars_per_hour for s in samples if s.dollars_per_hour is not None]
    return DemoSummary(
        samples=len(samples),
        slo_trace_s=slo_trace_s,
        windows_with_p95=len(with_p95),
        windows_within_slo=len(within),
        max_ready=max((sum(s.ready.values()) for s in samples), default=0),
        gpu_hours=gpu_hours,
        mean_dollars_per_hour=sum(spend) / len(spend) if spend else None,
    )


def write_samples_csv(samples: Sequence[Sample], path: Path) -> None:
    columns = ["wall_s", "trace_s", "demand_rps", "batch_demand_rps", "served_rps", "queue", "p95_ttft_s",
               "forecast_rps", "dollars_per_hour"]
    pools = (INTERACTIVE, BATCH, BATCH_ONDEMAND)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns + [f"{k}_{p}" for k in ("ready", "starting", "desired") for p in pools] + ["reason"])
        for s in samples:
            writer.writerow(
                [getattr(s, c) for c in columns]
                + [getattr(s, k).get(p, 0) for k in ("ready", "starting", "desired") for p in pools]
                + [s.reason]
            )


def plot_timeline(samples: Sequence[Sample], path: Path, *, slo_trace_s: float, title: str) -> None:
    """Four panels on trace minutes: demand, replicas, latency vs SLO with the queue, spend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in samples if s.trace_s is not None]
    t = [s.trace_s / 60.0 for s in rows]  # type: ignore[operator]

    def series(get: Callable[[Sample], float | None]) -> list[float]:
        return [math.nan if get(s) is None else float(get(s)) for s in rows]  # type: ignore[arg-type]

    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True, constrained_layout=True)
    ax = axes[0]
    ax.plot(t, series(lambda s: s.demand_rps), label="demand (arrivals)", color="tab:blue")
    ax.plot(t, series(lambda s: s.served_rps), label="served", color="tab:green", alpha=0.7)
    ax.plot(t, series(lambda s: s.forecast_rps), label="operator's forecast", color="tab:purple", ls="--")
    if any(s.batch_demand_rps for s in rows):
        ax.plot(t, series(lambda s: s.batch_demand_rps), label="batch demand", color="tab:brown", alpha=0.7)
    ax.set_ylabel("requests / s")
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[1]
    ready = series(lambda s: s.ready.get(INTERACTIVE, 0))
    up = series(lambda s: s.ready.get(INTERACTIVE, 0) + s.starting.get(INTERACTIVE, 0))
    ax.fill_between(t, ready, up, step="post", color="tab:orange", alpha=0.35, label="starting (cold start)")
    ax.step(t, ready, where="post", label="ready", color="tab:green")
    ax.step(t, series(lambda s: s.desired.get(INTERACTIVE, 0)), where="post", label="desired",
            color="black", ls=":")
    if any(s.ready.get(BATCH) or s.ready.get(BATCH_ONDEMAND) for s in rows):
        ax.step(t, series(lambda s: s.ready.get(BATCH, 0) + s.ready.get(BATCH_ONDEMAND, 0)), where="post",
                label="batch ready", color="tab:brown")
    ax.set_ylabel("interactive replicas")
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[2]
    twin = ax.twinx()
    twin.fill_between(t, series(lambda s: s.queue or 0.0), color="tab:gray", alpha=0.25, step="post",
                      label="queue (right axis)")
    twin.set_ylabel("requests waiting")
    twin.set_ylim(bottom=0)
    # Log scale: normal operation sits a decade below the SLO, an overload two decades above it.
    p95 = series(lambda s: s.p95_ttft_s if s.p95_ttft_s and s.p95_ttft_s > 0 else None)
    ax.plot(t, p95, label="p95 TTFT", color="tab:red")
    ax.axhline(slo_trace_s, color="tab:red", ls="--", alpha=0.6, label=f"SLO {slo_trace_s:g} s")
    ax.set_yscale("log")
    finite = [v for v in p95 if not math.isnan(v)]
    ax.set_ylim(min([slo_trace_s / 20, *finite]) * 0.8, max([slo_trace_s * 2, *finite]) * 1.5)
    ax.set_ylabel("seconds (trace)")
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, loc="upper right", fontsize=8)

    ax = axes[3]
    ax.plot(t, series(lambda s: s.dollars_per_hour), color="tab:olive")
    ax.set_ylabel("$ / hour")
    ax.set_xlabel("trace time (minutes)")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# The shell: cluster, child processes, sampling.


def repo_root() -> Path:
    """The checkout this package lives in (the demo uses its e2e/cluster scripts, examples and traces)."""
    for candidate in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        if (candidate / "e2e" / "cluster" / "up.sh").is_file() and (candidate / "examples").is_dir():
            return candidate
    raise DemoError("run the demo from a leadtime checkout (needs e2e/cluster/ and examples/)")


def default_trace(root: Path) -> Path:
    traces = sorted(p for p in (root / "benchmarks" / "traces").glob("*.csv*") if p.is_file())
    if not traces:
        raise DemoError("no trace in benchmarks/traces/; pass --trace")
    for key in TRACE_PREFERENCE:
        for path in traces:
            if key in path.name:
                return path
    return traces[0]


def parse_env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z_]+=", line))


class Children:
    """Child processes this demo started; stopped by PID, never by name."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        # Own session: the terminal's Ctrl-C reaches the demo only, which then stops children in order.
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True)
        self.procs[name] = proc
        return proc

    def dead(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs.items() if p.poll() is not None]

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop_all(self, timeout_s: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@dataclass
class ClusterInfo:
    kubeconfig: str
    kubectl: str
    prometheus_url: str
    targets_dir: Path


def bring_up_cluster(root: Path) -> ClusterInfo:
    print("[demo] bringing the local cluster up (reused when healthy; the first build takes a while)", flush=True)
    proc = subprocess.run(["bash", str(root / "e2e" / "cluster" / "up.sh")], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise DemoError(f"e2e/cluster/up.sh failed (exit {proc.returncode}); see its output above")
    env = parse_env_lines(proc.stdout)
    missing = {"KUBECONFIG", "LEADTIME_PROMETHEUS_URL", "LEADTIME_PROMETHEUS_TARGETS_DIR"} - set(env)
    if missing:
        raise DemoError(f"e2e/cluster/up.sh did not report {', '.join(sorted(missing))}")
    bin_dir = env.get("LEADTIME_BIN_DIR", "")
    kubectl = str(Path(bin_dir) / "kubectl") if bin_dir and (Path(bin_dir) / "kubectl").exists() else "kubectl"
    return ClusterInfo(env["KUBECONFIG"], kubectl, env["LEADTIME_PROMETHEUS_URL"],
                       Path(env["LEADTIME_PROMETHEUS_TARGETS_DIR"]))


def kubectl(info: ClusterInfo, *args: str, input_text: str | None = None, check: bool = True,
            timeout_s: float = 120.0) -> str:
    try:
        proc = subprocess.run([info.kubectl, "--kubeconfig", info.kubeconfig, *args], input=input_text,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        if check:
            raise DemoError(f"kubectl {' '.join(args)}: no answer within {timeout_s:.0f} s") from err
        return ""
    if check and proc.returncode != 0:
        raise DemoError(f"kubectl {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def delete_model_deployment(info: ClusterInfo, namespace: str, name: str, *, check: bool = True) -> None:
    """Delete it and wait; if its finalizer outlives the wait (no operator to release it), drop the finalizer.

    Its Deployments and Services are owned by it, so the garbage collector removes them either way.
    """
    args = ("-n", namespace, "delete", "modeldeployment", name, "--ignore-not-found", "--wait=true", "--timeout=60s")
    kubectl(info, *args, check=False, timeout_s=90.0)
    if not kubectl(info, "-n", namespace, "get", "modeldeployment", name, "--ignore-not-found", "-o", "name",
                   check=False).strip():
        return
    kubectl(info, "-n", namespace, "patch", "modeldeployment", name, "--type=merge",
            "-p", '{"metadata":{"finalizers":[]}}', check=check)


class Sampler:
    """Reads one Sample from Prometheus (what the operator reads too) and the ModelDeployment's status."""

    def __init__(self, info: ClusterInfo, namespace: str, name: str, time_scale: float, window: str) -> None:
        from kubernetes import client, config
        from prometheus_api_client import PrometheusConnect

        api = config.new_client_from_config(config_file=info.kubeconfig)
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.prom = PrometheusConnect(url=info.prometheus_url, disable_ssl=True)
        self.namespace, self.name, self.k, self.window = namespace, name, time_scale, window
        self.selector = f'namespace="{namespace}",model_deployment="{name}"'

    def _q(self, query: str) -> float | None:
        try:
            result = self.prom.custom_query(query)
        except Exception:  # a slow or restarting Prometheus shows as "-" in the table, not a crash
            return None
        values = [float(r["value"][1]) for r in result if "value" in r]
        values = [v for v in values if not math.isnan(v)]
        return sum(values) if values else None

    def sample(self, wall_s: float) -> Sample:
        sel, w, k = self.selector, self.window, self.k

        def per_trace_s(v: float | None) -> float | None:
            return None if v is None else v / k

        s = Sample(wall_s=wall_s)
        s.trace_s = self._q(f"max(leadtime_emulator_trace_time_seconds{{{sel}}})")
        s.demand_rps = per_trace_s(self._q(
            f'sum(rate(leadtime_emulator_requests_arrived_total{{{sel},request_class="interactive"}}[{w}]))'))
        s.batch_demand_rps = per_trace_s(self._q(
            f'sum(rate(leadtime_emulator_requests_arrived_total{{{sel},request_class="batch"}}[{w}]))'))
        s.served_rps = per_trace_s(self._q(f'sum(rate(vllm:request_success_total{{{sel},pool="interactive"}}[{w}]))'))
        s.queue = self._q(f'sum(vllm:num_requests_waiting{{{sel},pool="interactive"}})')
        p95 = self._q(
            f'histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{sel},'
            f'pool="interactive"}}[{w}])))'
        )
        s.p95_ttft_s = None if p95 is None else p95 * k
        self._pods(s)
        self._status(s)
        return s

    def _pods(self, s: Sample) -> None:
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{MODEL_LABEL}={self.name}").items
        except Exception:
            return
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None:
                continue
            pool = (pod.metadata.labels or {}).get(POOL_LABEL, "")
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            bucket = s.ready if ready else s.starting
            bucket[pool] = bucket.get(pool, 0) + 1

    def _status(self, s: Sample) -> None:
        try:
            md = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        except Exception:
            return
        status = md.get("status") or {}
        for pool, st in (status.get("pools") or {}).items():
            s.desired[pool] = int(st.get("desired") or 0)
        decision = status.get("lastDecision") or {}
        s.reason = decision.get("reason") or ""
        if decision.get("forecastRps") is not None:
            s.forecast_rps = float(decision["forecastRps"]) / self.k
        cost = status.get("cost") or {}
        if cost.get("dollarsPerHour") is not None:
            s.dollars_per_hour = float(cost["dollarsPerHour"])


@dataclass
class DemoOptions:
    trace: str | None
    time_scale: float
    duration_s: float | None
    start_s: float
    rate_scale: float
    cold_start_s: float
    slo_s: float
    seed: int
    table_every_s: float
    out_dir: str
    keep: bool
    down: bool
    batch: bool
    name: str = "llama-8b"
    namespace: str = NAMESPACE
    operator_cmd: str | None = None


def _plan_window(requests_span_s: float, opts: DemoOptions) -> float:
    """Trace seconds to replay: what was asked, else the whole trace, capped at MAX_WALL_MINUTES of wall time."""
    cap = MAX_WALL_MINUTES * 60.0 * opts.time_scale
    # +1 s: the window is half-open and must include the last arrival.
    wanted = opts.duration_s if opts.duration_s is not None else requests_span_s - opts.start_s + 1.0
    return min(wanted, cap)


def run_demo(opts: DemoOptions) -> int:
    root = repo_root()
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "demo-logs"
    log_dir.mkdir(exist_ok=True)
    trace = Path(opts.trace) if opts.trace else default_trace(root)
    example = root / "examples" / "llama-8b.yaml"
    base = yaml.safe_load(example.read_text())

    from leadtime.emulator.workload import load_requests

    all_requests = load_requests(str(trace), rate_scale=opts.rate_scale, seed=opts.seed)
    if not all_requests:
        raise DemoError(f"{trace}: no requests")
    span_s = all_requests[-1].arrival_s
    window_s = _plan_window(span_s, opts)
    chosen = [r for r in all_requests if opts.start_s <= r.arrival_s < opts.start_s + window_s]
    if not chosen:
        raise DemoError(f"no requests between {opts.start_s:.0f} s and {opts.start_s + window_s:.0f} s of {trace.name}")
    mean_in = sum(r.input_tokens for r in chosen) / len(chosen)
    mean_out = sum(r.output_tokens for r in chosen) / len(chosen)
    max_concurrency = int((base.get("spec", {}).get("capacity") or {}).get("maxConcurrency", 32))
    profile = demo_profile(get_profile("llama-8b-h100"), max_concurrency)
    capacity = SUSTAINABLE_UTILISATION * profile.throughput_rps(mean_in, mean_out)
    first_minute_rps = sum(1 for r in chosen if r.arrival_s < opts.start_s + 60.0) / 60.0
    warm_start = initial_replicas(first_minute_rps, capacity)
    base_floor = int((base.get("spec", {}).get("replicas") or {}).get("warmFloor", 1))
    scaling = Scaling(opts.time_scale, opts.cold_start_s, opts.slo_s, capacity)
    profile_path = out / "demo-profile.yaml"
    profile_path.write_text(yaml.safe_dump(profile.to_dict(), sort_keys=False))

    print(
        f"[demo] trace {trace.name}: {len(chosen)} requests over {window_s / 60:.1f} trace min "
        f"(rate x{opts.rate_scale:g}), replayed x{opts.time_scale:g} in ~{window_s / opts.time_scale / 60:.1f} min; "
        f"mean {mean_in:.0f} in / {mean_out:.0f} out tokens; one replica sustains ~{capacity:.1f} req/s; "
        f"cold start {opts.cold_start_s:g} s, SLO p95 TTFT {opts.slo_s:g} s (trace time)",
        flush=True,
    )

    info = bring_up_cluster(root)
    children = Children(log_dir)
    target = info.targets_dir / f"demo-{opts.namespace}-{opts.name}.json"
    applied = False
    samples: list[Sample] = []
    try:
        kubectl(info, "apply", "-f", str(root / "crds"))
        kubectl(info, "wait", "--for=condition=Established", "crd/modeldeployments.serving.leadtime.dev", "--timeout=60s")
        kubectl(info, "create", "namespace", opts.namespace, check=False)

        env = dict(os.environ, KUBECONFIG=info.kubeconfig, LEADTIME_PROMETHEUS_URL=info.prometheus_url)
        env["PYTHONUNBUFFERED"] = "1"
        # The operator first: a ModelDeployment left by a run that was killed hard carries the operator's
        # finalizer, and only a running operator lets it go.
        cli = opts.operator_cmd.split() if opts.operator_cmd else [sys.executable, "-m", "leadtime.cli"]
        operator = [*cli, "run", "--kubeconfig", info.kubeconfig, "--prometheus-url", info.prometheus_url,
                    "--namespace", opts.namespace, "--standalone", "--metrics-port", str(OPERATOR_METRICS_PORT)]
        children.start("operator", operator, env)
        delete_model_deployment(info, opts.namespace, opts.name)
        emulate = [
            sys.executable, "-m", "leadtime.cli", "emulate", "--kubeconfig", info.kubeconfig,
            "--namespace", opts.namespace, "--name", opts.name, "--trace", str(trace),
            "--time-scale", f"{opts.time_scale:g}", "--seed", str(opts.seed), "--port", str(EMULATOR_PORT),
            "--profile", str(profile_path), "--start", f"{opts.start_s:g}", "--duration", f"{window_s:g}",
            "--rate-scale", f"{opts.rate_scale:g}", "--wait-for-ready", str(warm_start), "--file-sd", str(target),
            "--summary-json", str(out / "demo-emulator-summary.json"),
        ]
        children.start("emulator", emulate, env)

        manifest = demo_manifest(base, name=opts.name, namespace=opts.namespace,
                                 prometheus_url=info.prometheus_url, scaling=scaling, batch=opts.batch,
                                 warm_start_replicas=warm_start)
        (out / "demo-modeldeployment.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        kubectl(info, "apply", "-f", "-", input_text=yaml.safe_dump(manifest, sort_keys=False))
        applied = True
        print(f"[demo] applied {opts.namespace}/{opts.name}; logs in {log_dir}/; Ctrl-C stops the demo", flush=True)
        print(f"[demo] warm start: the trace opens at {first_minute_rps:.1f} req/s, so the replay waits for "
              f"{warm_start} Ready replicas; then the warm floor goes back to {base_floor}", flush=True)
        floor_restored = warm_start <= base_floor

        sampler = Sampler(info, opts.namespace, opts.name, opts.time_scale, manifest["spec"]["metrics"]["window"])
        started = time.monotonic()
        wall_cap_s = window_s / opts.time_scale + 180.0  # the replay, plus start-up and the final drain
        print("[demo] table in trace time: demand/served in req/s, p95 TTFT in s, replicas ready/starting/desired",
              flush=True)
        print(TABLE_HEADER, flush=True)
        while True:
            sample = sampler.sample(time.monotonic() - started)
            samples.append(sample)
            print(format_row(sample), flush=True)
            if not floor_restored and sample.trace_s:
                kubectl(info, "-n", opts.namespace, "patch", "modeldeployment", opts.name, "--type=merge",
                        "-p", json.dumps({"spec": {"replicas": {"warmFloor": base_floor}}}))
                floor_restored = True
            dead = children.dead()
            if any(n == "operator" for n, _ in dead):
                raise DemoError("the operator exited:\n" + children.log_tail("operator"))
            if any(n == "emulator" for n, _ in dead):
                code = children.procs["emulator"].returncode
                if code != 0:
                    raise DemoError("the emulator exited:\n" + children.log_tail("emulator"))
                print("[demo] the trace has been replayed", flush=True)
                break
            if time.monotonic() - started > wall_cap_s:
                print("[demo] wall-clock cap reached; stopping", flush=True)
                break
            time.sleep(opts.table_every_s)
    except KeyboardInterrupt:
        print("\n[demo] interrupted; cleaning up", flush=True)
    finally:
        # Delete while the operator still runs, so it can release its finalizer; then stop the children.
        if applied and not opts.keep:
            print("[demo] deleting the demo ModelDeployment", flush=True)
            delete_model_deployment(info, opts.namespace, opts.name, check=False)
        children.stop_all()
        target.unlink(missing_ok=True)
        if opts.down:
            subprocess.run(["bash", str(root / "e2e" / "cluster" / "down.sh")], check=False)

    if samples:
        summary = summarize(samples, opts.slo_s)
        png = out / "demo-timeline.png"
        write_samples_csv(samples, out / "demo-timeline.csv")
        plot_timeline(samples, png, slo_trace_s=opts.slo_s,
                      title=f"leadtime demo: {trace.name} x{opts.rate_scale:g} demand, replayed x{opts.time_scale:g}")
        share = summary.slo_share
        emulator_summary = out / "demo-emulator-summary.json"
        extra = ""
        if emulator_summary.exists():
            emu = json.loads(emulator_summary.read_text())
            extra = (f"; requests arrived {emu['arrived']}, completed {emu['completed']}, re-queued "
                     f"{emu['requeued']}, lost {emu['lost']}")
        print(
            f"[demo] p95 TTFT within {opts.slo_s:g} s in "
            f"{'-' if share is None else f'{share:.0%}'} of {summary.windows_with_p95} samples; "
            f"peak {summary.max_ready} ready replicas; {summary.gpu_hours:.2f} GPU-hours of trace time{extra}",
            flush=True,
        )
        print(f"[demo] wrote {png} and {out / 'demo-timeline.csv'}", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m leadtime.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace", help="canonical trace CSV (default: the Azure conversation trace in benchmarks/traces/)")
    p.add_argument("--time-scale", type=float, default=10.0, help="trace seconds per wall second (default 10)")
    p.add_argument("--duration", type=float, default=None,
                   help="trace seconds to replay (default: the whole trace, capped at 10 wall minutes)")
    p.add_argument("--start", type=float, default=0.0, help="trace second to start at")
    p.add_argument("--rate-scale", type=float, default=4.0,
                   help="multiply the trace's request rate (default 4: the Azure trace peaks near 2 replicas otherwise)")
    p.add_argument("--cold-start", type=float, default=60.0, help="replica cold start, trace seconds (default 60)")
    p.add_argument("--slo", type=float, default=2.0, help="p95 TTFT target, trace seconds (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table-every", type=float, default=3.0, help="wall seconds between table rows")
    p.add_argument("--out", default="out", help="directory for the PNG, CSV and logs (default out/)")
    p.add_argument("--batch", action="store_true", help="also enable the batch pool (for traces with batch requests)")
    p.add_argument("--keep", action="store_true", help="leave the ModelDeployment in the cluster afterwards")
    p.add_argument("--down", action="store_true", help="tear the local cluster down afterwards")
    p.add_argument("--operator-cmd", default=None, help="the leadtime CLI the operator runs from (default: python -m leadtime.cli); `run ...` is appended")
    return p


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.time_scale <= 0 or args.rate_scale <= 0 or args.cold_start <= 0 or args.slo <= 0:
        print("demo: --time-scale, --rate-scale, --cold-start and --slo must be > 0", file=sys.stderr)
        return 2
    opts = DemoOptions(
        trace=args.trace, time_scale=args.time_scale, duration_s=args.duration, start_s=args.start,
        rate_scale=args.rate_scale, cold_start_s=args.cold_start, slo_s=args.slo, seed=args.seed,
        table_every_s=args.table_every, out_dir=args.out, keep=args.keep, down=args.down, batch=args.batch,
        operator_cmd=args.operator_cmd,
    )
    # Ctrl-C and SIGTERM both end in the cleanup of run_demo (also when started in the background, where
    # the shell hands SIGINT over ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_demo(opts)
    except DemoError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
