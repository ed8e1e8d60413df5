"""The operator with real metrics: the emulator replays a trace over the ModelDeployment's Ready pods,
Prometheus scrapes it, and the operator (a process) reads Prometheus. Prometheus outage; load drop."""

from __future__ import annotations

import os
import time

import pytest
from operator_process import (
    PrivatePrometheus,
    apply,
    conditions,
    decision_lines,
    delete_model_deployments,
    deployment_replicas,
    emulator_process,
    events,
    fast,
    get_md,
    install_crds,
    load_example,
    operator_process,
    printer_table,
    rate_trace,
)

pytestmark = pytest.mark.e2e

# The issue asks for a 2-minute outage; LEADTIME_E2E_OUTAGE_S shortens it for a quick local run.
OUTAGE_S = float(os.environ.get("LEADTIME_E2E_OUTAGE_S", "120"))


@pytest.fixture(scope="module")
def crds(cluster):
    install_crds(cluster)


@pytest.fixture
def processes(cluster, namespace):
    started = []
    yield started
    delete_model_deployments(cluster, namespace)
    for process in reversed(started):
        process.stop()
    for process in started:
        print(f"--- {process.log_path.name} (tail)\n" + "\n".join(process.log().splitlines()[-40:]))


def metrics_available(cluster, namespace, name):
    cond = conditions(get_md(cluster, namespace, name)).get("MetricsAvailable")
    return cond if cond and cond["status"] == "True" else None


def test_prometheus_outage_holds_replicas_reports_and_recovers(cluster, namespace, crds, processes, tmp_path):
    prometheus = PrivatePrometheus(cluster, tmp_path).start()
    try:
        _outage(cluster, namespace, processes, tmp_path, prometheus)
    finally:
        prometheus.stop()  # the one started after the outage, too


def _outage(cluster, namespace, processes, tmp_path, prometheus):
    md = fast(load_example("llama-8b.yaml"), cold_start="5s")
    md["spec"]["metrics"] = {"window": "15s"}
    apply(cluster, namespace, md)
    trace = rate_trace(tmp_path / "steady.csv", [(0, 3600, 5.0)])
    processes.append(emulator_process(cluster, namespace, "llama-8b", trace, tmp_path).start())
    processes.append(operator_process(cluster, namespace, tmp_path, prometheus_url=prometheus.url).start())

    cluster.wait_for(lambda: metrics_available(cluster, namespace, "llama-8b"), 90, "MetricsAvailable=True", namespace)
    assert conditions(get_md(cluster, namespace, "llama-8b"))["Degraded"]["reason"] in ("AsExpected", "SloBreached")
    table = cluster.kubectl("get", "md", "-n", namespace, "llama-8b").stdout
    row = printer_table(table)[0]
    assert row["QUEUE"] and row["$/H"] and row["READY"], table

    prometheus.stop()
    outage_started = time.monotonic()

    def unavailable():
        obj = get_md(cluster, namespace, "llama-8b")
        cond = conditions(obj).get("MetricsAvailable")
        return obj if cond and cond["status"] == "False" and obj["status"]["lastDecision"]["held"] else None

    obj = cluster.wait_for(unavailable, 20, "MetricsAvailable=False and a held decision", namespace)
    assert conditions(obj)["MetricsAvailable"]["reason"] == "PrometheusUnreachable"
    held = deployment_replicas(cluster, namespace, "llama-8b")
    assert held >= 1
    while time.monotonic() - outage_started < OUTAGE_S:
        assert deployment_replicas(cluster, namespace, "llama-8b") == held, "replicas changed without metrics"
        assert processes[-1].alive(), "the operator died during the outage"
        time.sleep(2)
    ticks_during_outage = [d for d in decision_lines(processes[-1]) if d["metrics"] == "PrometheusUnreachable"]
    assert len(ticks_during_outage) >= OUTAGE_S / 2 / 2, "the operator stopped ticking during the outage"

    prometheus.start()
    recovered = cluster.wait_for(lambda: metrics_available(cluster, namespace, "llama-8b"), 60,
                                 "MetricsAvailable=True after Prometheus returned", namespace)
    assert recovered["reason"] == "MetricsRead"

    def decided_again():
        status = get_md(cluster, namespace, "llama-8b")["status"]
        return status if not status["lastDecision"]["held"] else None

    cluster.wait_for(decided_again, 30, "an unheld decision", namespace)


def test_load_drop_scales_down_only_after_stabilisation_and_never_below_the_floor(
    cluster, namespace, crds, processes, tmp_path
):
    stabilization_s, floor, high_s = 30, 2, 90
    md = fast(load_example("llama-8b.yaml"), cold_start="5s")
    md["spec"]["replicas"]["warmFloor"] = floor
    md["spec"]["scaleDown"] = {"stabilizationSeconds": stabilization_s, "costAware": False}
    md["spec"]["capacity"]["requestsPerSecondPerReplica"] = 2.0
    md["spec"]["metrics"] = {"window": "15s"}
    apply(cluster, namespace, md)
    trace = rate_trace(tmp_path / "drop.csv", [(0, high_s, 10.0), (high_s, 3600, 0.2)])
    operator = operator_process(cluster, namespace, tmp_path).start()
    processes.append(operator)
    # Trace time starts when the emulator does (pods not yet Ready queue at its router).
    emulator = emulator_process(cluster, namespace, "llama-8b", trace, tmp_path).start()
    processes.append(emulator)
    drop_at_s = time.time() + high_s
    # The emulator needs a moment to load before trace time starts, so the real drop comes a little
    # later than drop_at_s; this much slack keeps the check from failing on a slow start.
    startup_skew_s = 3.0

    cluster.wait_for(lambda: (deployment_replicas(cluster, namespace, "llama-8b") or 0) > floor, high_s,
                     "a scale-up above the floor under load", namespace)

    def back_at_floor():
        return time.time() > drop_at_s and deployment_replicas(cluster, namespace, "llama-8b") == floor

    cluster.wait_for(back_at_floor, high_s + 240, "the floor again after the load dropped", namespace)
    decisions = decision_lines(operator)
    assert min(d["replicas"]["interactive"] for d in decisions) >= floor
    def interactive_change(decision) -> int:  # noqa: ANN001
        before, after = decision["scaled"].get("interactive", [0, 0])
        return after - before

    downs = [d for d in decisions if interactive_change(d) < 0]
    downs_after_drop = [d for d in downs if d["ts"] > drop_at_s]
    assert downs_after_drop, "no scale-down after the drop"
    # Stabilisation runs from the last time a higher count was recommended, not from the load drop: a
    # forecast that overshot on the way up can stop asking for the top count before the drop. What a
    # user sees is that no scale-down follows a scale-up within the window, and the reason says so.
    ups = [d for d in decisions if interactive_change(d) > 0]
    assert ups, "no scale-up under load"
    first_down = downs[0]
    last_up_before = max(d["ts"] for d in ups if d["ts"] < first_down["ts"])
    waited_s = first_down["ts"] - last_up_before
    assert waited_s >= stabilization_s, (
        f"first scale-down {waited_s:.0f} s after the last scale-up; stabilisation is {stabilization_s} s")
    assert first_down["ts"] > drop_at_s - startup_skew_s - stabilization_s, "scaled down long before the drop"
    assert f"stable for {stabilization_s}" in first_down["reason"]
    scaled_down = [e for e in events(cluster, namespace, "llama-8b") if e.reason == "ScaledDown"]
    assert scaled_down and "interactive" in scaled_down[0].message
