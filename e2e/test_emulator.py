"""The emulator against the real control plane and Prometheus: per-pod metrics, a pod deleted mid-run.

No operator here: a Deployment with the operator's pod labels stands in for its interactive pool.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from harness import COLD_START_ANNOTATION, GPU, PLACEHOLDER_IMAGE, POOL_LABEL

pytestmark = pytest.mark.e2e

MODEL = "emu-e2e"
SELECTOR = f"serving.leadtime.dev/model={MODEL}"
TIME_SCALE = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_trace(path: Path, rate_rps: float, duration_s: float, seed: int = 5) -> int:
    """A steady Poisson trace heavy enough that every pod always has requests in flight."""
    rng = random.Random(seed)
    t, rows = 0.0, []
    while True:
        t += rng.expovariate(rate_rps)
        if t >= duration_s:
            break
        rows.append(f"{t:.3f},{rng.randint(600, 1400)},{rng.randint(150, 250)}")
    path.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    return len(rows)


def deployment(namespace: str, replicas: int) -> dict:
    labels = {"serving.leadtime.dev/model": MODEL, "serving.leadtime.dev/pool": "interactive"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": MODEL, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {COLD_START_ANNOTATION: "2s"}},
                "spec": {
                    "nodeSelector": {POOL_LABEL: "on-demand"},
                    # The local cluster honours grace periods; the namespace teardown need not wait.
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "model",
                        "image": PLACEHOLDER_IMAGE,
                        "resources": {"requests": {GPU: "1"}, "limits": {GPU: "1"}},
                    }],
                },
            },
        },
    }


def scrape(port: int) -> dict[str, dict[str, float]]:
    """The emulator's own /metrics: metric name -> pod -> value (for picking a busy pod)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[sample.labels.get("pod", "")] = sample.value
    return out


@pytest.mark.timeout(600)
def test_emulator_serves_per_pod_metrics_and_requeues_when_a_pod_is_deleted(cluster, namespace, tmp_path):
    from prometheus_api_client import PrometheusConnect

    if cluster.profile != "kwok":
        pytest.skip("the emulator stands in for pods that do not run (kwok); on kind use serve-fake")
    if not cluster.prometheus_url or cluster.prometheus_targets_dir is None:
        pytest.skip("needs the local Prometheus with a file_sd targets directory")

    trace = tmp_path / "steady.csv"
    n_requests = write_trace(trace, rate_rps=16.0, duration_s=900.0)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment(namespace, 2)))
    cluster.wait_for_pods(namespace, SELECTOR, 2, timeout_s=60)

    port = free_port()
    target = cluster.prometheus_targets_dir / f"emulator-{namespace}.json"
    summary_path = tmp_path / "summary.json"
    log = (tmp_path / "emulator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadtime.cli", "emulate", "--kubeconfig", str(cluster.kubeconfig),
         "--namespace", namespace, "--name", MODEL, "--trace", str(trace), "--time-scale", str(TIME_SCALE),
         "--seed", "1", "--port", str(port), "--wait-for-ready", "--file-sd", str(target),
         "--summary-json", str(summary_path), "--poll-interval", "0.25"],
        stdout=log, stderr=subprocess.STDOUT, env=cluster.env(),
    )
    try:
        prom = PrometheusConnect(url=cluster.prometheus_url, disable_ssl=True)
        names = {p.metadata.name for p in cluster.pods(namespace, SELECTOR)}

        def pods_in_prometheus() -> set[str]:
            result = prom.custom_query(f'vllm:num_requests_running{{namespace="{namespace}",model_deployment="{MODEL}"}}')
            return {r["metric"].get("pod", "") for r in result if r["metric"].get("pool") == "interactive"}

        cluster.wait_for(lambda: pods_in_prometheus() == names, 60, f"Prometheus to scrape per-pod series of {names}",
                         namespace)

        def value(query: str) -> float:
            result = prom.custom_query(query)
            return float(result[0]["value"][1]) if result else 0.0

        cluster.wait_for(lambda: value(f'sum(vllm:request_success_total{{namespace="{namespace}"}})') > 0,
                         60, "completions to show up in Prometheus", namespace)

        # Delete a pod that has requests in flight right now.
        busy = cluster.wait_for(
            lambda: next((pod for pod, n in scrape(port)["vllm:num_requests_running"].items() if pod and n >= 1), None),
            30, "a pod with requests in flight", namespace)
        cluster.core.delete_namespaced_pod(busy, namespace, grace_period_seconds=0)

        requeued_query = f'sum(leadtime_emulator_requests_requeued_total{{namespace="{namespace}"}})'
        cluster.wait_for(lambda: value(requeued_query) > 0, 30, "Prometheus to show re-queued requests", namespace)
        # The Deployment replaces the pod; the emulator picks the new one up and drops the old one's series.
        cluster.wait_for_pods(namespace, SELECTOR, 2, timeout_s=60)
        new_names = {p.metadata.name for p in cluster.pods(namespace, SELECTOR)}
        assert busy not in new_names
        cluster.wait_for(lambda: pods_in_prometheus() == new_names, 60,
                         f"Prometheus series to follow the pods {new_names}", namespace)

        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
        log.close()
        target.unlink(missing_ok=True)
    output = (tmp_path / "emulator.log").read_text()
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["arrived"] == n_requests
    assert summary["lost"] == 0
    assert summary["unfinished"] == 0
    assert summary["requeued"] >= 1
    assert summary["pods_seen"] == 3
