"""Helpers for the chart's e2e tests: render and install the chart, and run the operator as the chart's
ServiceAccount so that the API server enforces exactly the RBAC the chart grants.

Every release is named after its test namespace, and so is its peering object: the ClusterRole,
ClusterRoleBinding and ClusterKopfPeering are cluster-scoped, and tests of other sessions may run
against the same cluster at the same time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from harness import REPO, Cluster
from operator_process import Process, free_port

CHART = REPO / "charts" / "leadtime"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
MODEL_LABEL = "serving.leadtime.dev/model"


def server_version(cluster: Cluster) -> str:
    """The API server's version without build metadata ("1.36.3"): what `helm template` renders for."""
    info = yaml.safe_load(cluster.kubectl("version", "-o", "yaml").stdout)["serverVersion"]
    return info["gitVersion"].lstrip("v").split("+")[0].split("-")[0]


def release_args(release: str, *, watch_namespaces: list[str] | None = None, values: Path | None = None,
                 sets: tuple[str, ...] = ()) -> list[str]:
    """Arguments shared by `helm template` and `helm install`: unique names, optional namespaced mode."""
    args = ["--set", f"peering.name={release}"]
    if values is not None:
        args += ["-f", str(values)]
    if watch_namespaces is not None:
        args += ["--set-json", f"watchNamespaces={json.dumps(watch_namespaces)}"]
    for item in sets:
        args += ["--set", item]
    return args


def render(cluster: Cluster, release: str, namespace: str, *args: str) -> str:
    """`helm template` for the cluster's own Kubernetes version."""
    proc = cluster.helm("template", release, str(CHART), "--namespace", namespace,
                        "--kube-version", server_version(cluster), *args)
    return proc.stdout


def install(cluster: Cluster, release: str, namespace: str, *args: str, timeout_s: int = 120) -> None:
    """`helm install --wait`: returns once the operator Deployment is available."""
    cluster.helm("install", release, str(CHART), "--namespace", namespace, "--wait",
                 "--timeout", f"{timeout_s}s", *args, timeout_s=timeout_s + 30)


def uninstall(cluster: Cluster, release: str, namespace: str) -> None:
    cluster.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s", check=False)


def manifests(cluster: Cluster, release: str, namespace: str) -> list[dict[str, Any]]:
    """What the release installed, as Helm recorded it."""
    text = cluster.helm("get", "manifest", release, "--namespace", namespace).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator")


def service_account(docs: list[dict[str, Any]]) -> str:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["serviceAccountName"]


def token_kubeconfig(cluster: Cluster, service_account_name: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a short-lived token and nothing else."""
    token = cluster.kubectl("create", "token", service_account_name, "-n", namespace,
                            "--duration", "1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--minify", "--flatten").stdout)
    user = f"system:serviceaccount:{namespace}:{service_account_name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "chart-sa", "context": {"cluster": admin["clusters"][0]["name"], "user": user}}],
        "current-context": "chart-sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def as_sa(cluster: Cluster, kubeconfig: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """kubectl with the ServiceAccount's kubeconfig (never raises: callers assert on the outcome)."""
    return subprocess.run([cluster.kubectl_path, "--kubeconfig", str(kubeconfig), *args], input=input,
                          capture_output=True, text=True, timeout=30)


def can_i(cluster: Cluster, kubeconfig: Path, *args: str) -> bool:
    """`kubectl auth can-i` as the ServiceAccount: the API server's own RBAC verdict."""
    proc = as_sa(cluster, kubeconfig, "auth", "can-i", *args)
    answer = proc.stdout.strip()
    if answer not in ("yes", "no"):
        raise RuntimeError(f"auth can-i {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return answer == "yes"


def local_args(container: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """The chart's `leadtime run` arguments with the listeners moved to free ports on 127.0.0.1.

    Everything else (peering, namespaces, Prometheus URL, log level) stays exactly as rendered, so an
    argument the chart passes and the command does not accept fails the test.
    """
    ports = {"health": free_port(), "metrics": free_port()}
    args = []
    for arg in container["args"]:
        if arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{ports['health']}/healthz"
        elif arg.startswith("--metrics-port="):
            arg = f"--metrics-port={ports['metrics']}"
        elif arg.startswith("--metrics-address="):
            arg = "--metrics-address=127.0.0.1"
        args.append(arg)
    return args, ports


def chart_operator(cluster: Cluster, docs: list[dict[str, Any]], kubeconfig: Path, log_path: Path, *,
                   pod_name: str, prometheus_url: str | None = None) -> Process:
    """`leadtime run` with the chart's arguments and environment, authenticated by kubeconfig only."""
    container = operator_container(docs)
    args, ports = local_args(container)
    if prometheus_url is not None:
        args = [a for a in args if not a.startswith("--prometheus-url=")] + [f"--prometheus-url={prometheus_url}"]
    env = {k: v for k, v in cluster.env().items() if k != "KUBECONFIG"}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    release_namespace = next(d for d in docs if d["kind"] == "Deployment")["metadata"]["namespace"]
    env.update(POD_NAME=pod_name, POD_NAMESPACE=release_namespace, HOME=os.environ.get("HOME", "/tmp"),
               LEADTIME_TICK_SECONDS="1")
    if prometheus_url is not None:
        env["LEADTIME_PROMETHEUS_URL"] = prometheus_url
    command = [sys.executable, "-m", "leadtime.cli", *args, "--kubeconfig", str(kubeconfig)]
    process = Process(command, env, log_path)
    process.ports = ports  # type: ignore[attr-defined]
    return process


def release_model_deployments(cluster, namespace: str) -> None:
    """After a failure the operator may be gone with its finalizer still on a ModelDeployment, which
    would keep the namespace Terminating forever on a shared cluster."""
    for md in cluster.kubectl("get", "md", "-n", namespace, "-o", "name").stdout.split():
        cluster.kubectl("patch", "-n", namespace, md, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                        check=False)


def liveness_ok(process: Process) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.ports['health']}/healthz", timeout=1) as rsp:
            return rsp.status == 200
    except OSError:
        return False
