"""Helpers for the operator e2e scenarios: the operator and the emulator as real processes, CRDs, status.

The operator is started exactly as a user starts it (`leadtime run`), watching only the test's
namespace so that tests cannot see each other's ModelDeployments.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from harness import REPO, Cluster

GROUP, VERSION, PLURAL = "serving.leadtime.dev", "v1alpha1", "modeldeployments"
CRD_NAME = f"{PLURAL}.{GROUP}"
EXAMPLES = REPO / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_crds(cluster: Cluster) -> None:
    """Apply the generated CRD and wait until the API server serves it."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")


class Process:
    """A child process with its output in a log file; stopped by its own pid only."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.args, self.env, self.log_path = args, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=REPO)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no final status write."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 15) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def operator_process(cluster: Cluster, namespace: str, tmp_path: Path, *, prometheus_url: str | None = None) -> Process:
    metrics_port = free_port()
    args = [
        sys.executable, "-m", "leadtime.cli", "run",
        "--kubeconfig", str(cluster.kubeconfig),
        "--namespace", namespace,
        "--standalone",
        "--metrics-port", str(metrics_port),
        "--prometheus-url", prometheus_url if prometheus_url is not None else (cluster.prometheus_url or ""),
    ]
    env = cluster.env()
    # One-second ticks check due-ness; the e2e specs use short control intervals.
    env.setdefault("LEADTIME_TICK_SECONDS", "1")
    process = Process(args, env, tmp_path / "operator.log")
    process.metrics_port = metrics_port  # type: ignore[attr-defined]
    return process


def emulator_process(
    cluster: Cluster, namespace: str, name: str, trace: Path, tmp_path: Path, *, time_scale: float = 1.0,
    extra: tuple[str, ...] = (),
) -> Process:
    port = free_port()
    assert cluster.prometheus_targets_dir is not None, "the emulator needs a Prometheus file_sd directory"
    args = [
        sys.executable, "-m", "leadtime.cli", "emulate",
        "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace, "--name", name,
        "--trace", str(trace), "--time-scale", str(time_scale), "--port", str(port),
        "--poll-interval", "0.5", "--keep-serving",
        "--file-sd", str(cluster.prometheus_targets_dir / f"emulator-{namespace}-{name}.json"),
        "--summary-json", str(tmp_path / f"emulator-{name}-summary.json"), *extra,
    ]
    process = Process(args, cluster.env(), tmp_path / f"emulator-{name}.log")
    process.port = port  # type: ignore[attr-defined]
    return process


def load_example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def fast(md: dict[str, Any], *, cold_start: str = "5s", interval_s: int = 2) -> dict[str, Any]:
    """A copy with e2e-sized timings: short cold start and control interval, and pods that go at once
    when deleted (the local cluster honours grace periods; e2e/test_drain.py sets its own drain)."""
    md = copy.deepcopy(md)
    spec = md["spec"]
    spec["controlIntervalSeconds"] = interval_s
    spec.setdefault("drain", {"terminationGracePeriodSeconds": 0, "preStopSleepSeconds": 0})
    spec["model"].setdefault("podAnnotations", {})["leadtime.dev/cold-start"] = cold_start
    spec.setdefault("capacity", {})["coldStartSeconds"] = float(cold_start.rstrip("s"))
    return md


def apply(cluster: Cluster, namespace: str, obj: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=check)


def delete_model_deployments(cluster: Cluster, namespace: str) -> None:
    """Delete a namespace's ModelDeployments while the operator still runs: kopf puts a finalizer on
    every resource with a timer and only a running operator removes it."""
    cluster.kubectl("delete", "modeldeployments", "--all", "-n", namespace, "--wait=true", "--timeout=60s",
                    check=False, timeout_s=90)


def printer_table(text: str) -> list[dict[str, str]]:
    """`kubectl get` output as rows keyed by column header; empty cells are ''."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    rows = []
    for line in lines[1:]:
        bounds = list(zip(starts, starts[1:] + [len(line) + 1], strict=True))
        rows.append({name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)})
    return rows


def get_md(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    return client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def conditions(md: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (md.get("status") or {}).get("conditions") or []}


def deployment_replicas(cluster: Cluster, namespace: str, name: str) -> int | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return cluster.apps.read_namespaced_deployment(name, namespace).spec.replicas
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def events(cluster: Cluster, namespace: str, name: str) -> list[Any]:
    return cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=ModelDeployment").items


def decision_lines(process: Process) -> list[dict[str, Any]]:
    """The operator's one-line JSON decision records."""
    lines = []
    for line in process.log().splitlines():
        start = line.find('{"event":"decision"')
        if start >= 0:
            lines.append(json.loads(line[start:]))
    return lines


class PrivatePrometheus:
    """A Prometheus of this test's own (Debian's binary) scraping the shared file_sd targets.

    Stopping the cluster's shared Prometheus would break every other test using it; a private one can
    be stopped and started at will, on the same port so the operator's URL stays valid.
    """

    def __init__(self, cluster: Cluster, tmp_path: Path):
        import shutil

        self.binary = shutil.which("prometheus") or "prometheus"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tmp_path / "prometheus"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "leadtime", "honor_labels": True,
                "file_sd_configs": [{"files": [f"{cluster.prometheus_targets_dir}/*.json"], "refresh_interval": "1s"}],
            }],
        }))
        self.process: Process | None = None

    def start(self) -> PrivatePrometheus:
        import urllib.request

        args = [self.binary, f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"]
        self.process = Process(args, dict(os.environ), self.dir / "prometheus.log").start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("private Prometheus not ready:\n" + self.process.log()[-2000:])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def rate_trace(path: Path, windows: list[tuple[float, float, float]], input_tokens: int = 256, output_tokens: int = 64) -> Path:
    """A rate CSV: (start_s, duration_s, rate_rps) windows of interactive requests."""
    lines = ["start_s,duration_s,rate_rps,input_tokens,output_tokens"]
    lines += [f"{start},{duration},{rate},{input_tokens},{output_tokens}" for start, duration, rate in windows]
    path.write_text("\n".join(lines) + "\n")
    return path
