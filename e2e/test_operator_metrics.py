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
    processes.append(prometheus.process)
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
    emulator = emulator_process(cluster, namespace, "llama-8b", trace, tmp_path, extra=("--wait-for-ready",)).start()
    processes.append(emulator)
    operator = operator_process(cluster, namespace, tmp_path).start()
    processes.append(operator)
    trace_started = time.monotonic()

    peak = cluster.wait_for(lambda: (r := deployment_replicas(cluster, namespace, "llama-8b")) and r > floor and r,
                            high_s, "a scale-up above the floor under load", namespace)
    drop_at = trace_started + high_s
    lowest, first_down_at = peak, None
    deadline = drop_at + 180
    while time.monotonic() < deadline:
        replicas = deployment_replicas(cluster, namespace, "llama-8b")
        if replicas < lowest and time.monotonic() > drop_at and first_down_at is None:
            first_down_at = time.monotonic()
        lowest = min(lowest, replicas)
        assert replicas >= floor, f"scaled below the floor to {replicas}"
        if replicas == floor and first_down_at is not None:
            break
        time.sleep(0.5)
    assert first_down_at is not None, f"never scaled down from {peak} after the drop"
    assert first_down_at - drop_at >= stabilization_s, (
        f"scaled down {first_down_at - drop_at:.0f} s after the drop, stabilisation is {stabilization_s} s")
    assert lowest == floor
    downs = [e for e in events(cluster, namespace, "llama-8b") if e.reason == "ScaledDown"]
    assert downs and "interactive" in downs[0].message
