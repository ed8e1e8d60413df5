"""Plumbing for e2e tests against a real control plane (kwok here, kind for users with Docker).

Fixtures (defined in e2e/conftest.py, built from this module):

- ``cluster`` (session): a :class:`Cluster`. By default it runs ``e2e/cluster/up.sh`` (builds nothing
  when cached, reuses a healthy cluster) and leaves the cluster running for the next session (several
  sessions may share it); with ``LEADTIME_E2E_TEARDOWN=1`` it runs ``down.sh`` at the end if this
  session created the cluster. If ``KUBECONFIG`` is set, that cluster is used
  as is (it must have nodes labelled ``leadtime.dev/capacity-type``, a guard against running tests on
  an unrelated cluster), with Prometheus from ``LEADTIME_PROMETHEUS_URL`` (+ optional
  ``LEADTIME_PROMETHEUS_TARGETS_DIR``) or, when unset, a local one started by ``prometheus.sh``.
  ``LEADTIME_E2E_PROFILE`` is ``kwok`` (default) or ``kind``; kwok-only behaviour (cold start from
  the ``leadtime.dev/cold-start`` annotation) is skipped on kind.
  Attributes: ``kubeconfig``, ``kubectl_path``, ``helm_path``, ``bin_dir``, ``prometheus_url``,
  ``prometheus_targets_dir``, ``profile``, ``api`` (kubernetes ``ApiClient``), ``core``
  (``CoreV1Api``), ``apps`` (``AppsV1Api``). Methods: ``kubectl(*args)``, ``helm(*args)``,
  ``env()`` (environment for subprocesses such as the operator), ``add_scrape_target(name,
  "127.0.0.1:PORT", labels)`` / ``remove_scrape_target(name)``, ``diagnostics(namespace)``,
  ``wait_for(predicate, timeout_s, describe, namespace=...)``, ``wait_for_pods(...)``,
  ``restore_nodes()``.
- ``namespace`` (function): a fresh namespace name; deleted after the test, waiting until it is gone
  so that the next test sees the GPU pools empty.

Module helpers: ``wait_for``, ``gpu_deployment(name, replicas, gpus, pool, tolerate_spot, cold_start)``
(a Deployment manifest of placeholder GPU replicas), ``is_ready(pod)``, ``node_ready(node)``,
``condition(obj, type)``, and the constants ``POOL_LABEL``, ``COLD_START_ANNOTATION``, ``GPU``,
``SPOT_TOLERATION``. Without ``KUBECONFIG`` the harness honours ``LEADTIME_STATE_DIR`` and
``LEADTIME_PROMETHEUS_PORT`` (a private cluster next to the default one); with it, ``kubectl``/``helm``
come from ``LEADTIME_BIN_DIR`` when set (the ``env`` file written by up.sh sets it), else from PATH.

``wait_for`` polls ``predicate`` until it returns something truthy (which it returns) or the deadline
passes; the failure message carries ``describe``, the last value or exception, and, through
``Cluster.wait_for``, ``kubectl get pods -o wide`` and recent events of the namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPTS = REPO / "e2e" / "cluster"
POOL_LABEL = "leadtime.dev/capacity-type"
COLD_START_ANNOTATION = "leadtime.dev/cold-start"
GPU = "nvidia.com/gpu"
SPOT_TOLERATION = {"key": POOL_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}
# Image of the placeholder containers in tests: kwok never pulls it; on kind set it to an image the
# nodes have (e.g. a pause image loaded with `kind load docker-image`).
PLACEHOLDER_IMAGE = os.environ.get("LEADTIME_E2E_IMAGE", "leadtime.dev/placeholder:e2e")

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A wait_for deadline passed; the message says what was awaited and what the cluster looked like."""


def wait_for(
    predicate: Callable[[], T],
    timeout_s: float,
    describe: str,
    diagnostics: Callable[[], str] | None = None,
    interval_s: float = 0.2,
) -> T:
    """Poll predicate until it returns a truthy value (returned) or raise WaitTimeout at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    last_error: BaseException | None = None
    while True:
        try:
            last = predicate()
            last_error = None
            if last:
                return last
        except Exception as exc:  # a transient API error must not end the wait early
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    lines = [f"timed out after {timeout_s:.0f}s waiting for: {describe}"]
    if last_error is not None:
        lines.append(f"last error: {last_error!r}")
    else:
        lines.append(f"last value: {last!r}")
    if diagnostics is not None:
        try:
            lines.append(diagnostics())
        except Exception as exc:
            lines.append(f"(diagnostics failed: {exc!r})")
    raise WaitTimeout("\n".join(lines))


def _parse_env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z_]+=", line))


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_path: str
    helm_path: str | None
    bin_dir: Path | None
    prometheus_url: str | None
    prometheus_targets_dir: Path | None
    profile: str = "kwok"
    created_by_us: bool = False
    _api: Any = field(default=None, repr=False)

    # --- clients -------------------------------------------------------------------------------
    @property
    def api(self):
        """A kubernetes ApiClient configured from this cluster's kubeconfig (not the global default)."""
        if self._api is None:
            from kubernetes import config

            self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api

    @property
    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def apps(self):
        from kubernetes import client

        return client.AppsV1Api(self.api)

    # --- subprocesses --------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for child processes (operator, emulator, scripts) that should use this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        if self.bin_dir is not None:
            env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
            env["LEADTIME_BIN_DIR"] = str(self.bin_dir)
        if self.prometheus_url:
            env["LEADTIME_PROMETHEUS_URL"] = self.prometheus_url
        if self.prometheus_targets_dir is not None:
            env["LEADTIME_PROMETHEUS_TARGETS_DIR"] = str(self.prometheus_targets_dir)
        return env

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises with stderr included when check and it fails."""
        cmd = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def helm(
        self, *args: str, check: bool = True, timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        if not self.helm_path:
            raise RuntimeError("helm is not available (build it with e2e/cluster/install-deps.sh)")
        cmd = [self.helm_path, "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=self.env())
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    # --- Prometheus targets ----------------------------------------------------------------------
    def _target_path(self, name: str) -> Path:
        if self.prometheus_targets_dir is None:
            raise RuntimeError("no Prometheus targets dir: set LEADTIME_PROMETHEUS_TARGETS_DIR")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"target name must be a plain file name, got {name!r}")
        return self.prometheus_targets_dir / f"{name}.json"

    def add_scrape_target(self, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
        """Have Prometheus scrape address (host:port) within ~1 s; labels are attached to the target."""
        path = self._target_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")  # not matched by *.json: Prometheus never reads half a file
        tmp.write_text(json.dumps([{"targets": [address], "labels": labels or {}}]))
        tmp.replace(path)
        return path

    def remove_scrape_target(self, name: str) -> None:
        self._target_path(name).unlink(missing_ok=True)

    # --- observing -----------------------------------------------------------------------------
    def diagnostics(self, namespace: str | None = None) -> str:
        """Pods (wide), recent events and node summary: what a failing e2e test should show."""
        scope = ["-n", namespace] if namespace else ["-A"]
        parts = []
        for title, args in (
            ("pods", ["get", "pods", "-o", "wide", *scope]),
            ("events", ["get", "events", "--sort-by=.lastTimestamp", *scope]),
            ("nodes", ["get", "nodes", "-L", POOL_LABEL, "-o", "wide"]),
        ):
            try:
                proc = self.kubectl(*args, check=False, timeout_s=15)
                out = (proc.stdout + proc.stderr).strip()
            except Exception as exc:
                out = f"(failed: {exc!r})"
            if title == "events":
                out = "\n".join(out.splitlines()[-40:])
            parts.append(f"--- kubectl {' '.join(args)}\n{out}")
        return "\n".join(parts)

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout_s: float,
        describe: str,
        namespace: str | None = None,
        interval_s: float = 0.2,
    ) -> T:
        return wait_for(predicate, timeout_s, describe, lambda: self.diagnostics(namespace), interval_s)

    def pods(self, namespace: str, selector: str | None = None) -> list:
        return self.core.list_namespaced_pod(namespace, label_selector=selector).items

    def wait_for_pods(
        self,
        namespace: str,
        selector: str,
        count: int,
        timeout_s: float,
        ready: bool = True,
    ) -> list:
        """Wait until exactly count live pods match selector (and all are Ready if ready); return them."""

        def check():
            live = [p for p in self.pods(namespace, selector) if p.metadata.deletion_timestamp is None]
            if len(live) != count:
                return None
            if ready and not all(is_ready(p) for p in live):
                return None
            return live

        what = f"{count} {'Ready ' if ready else ''}pods matching {selector!r} in {namespace}"
        return self.wait_for(check, timeout_s, what, namespace)

    def nodes(self, pool: str | None = None) -> list:
        selector = f"{POOL_LABEL}={pool}" if pool else POOL_LABEL
        return self.core.list_node(label_selector=selector).items

    def restore_nodes(self, timeout_s: float = 60) -> None:
        """Recreate deleted fake GPU nodes (kwok profile) and wait for all six to be Ready."""
        if self.profile != "kwok":
            return
        self.kubectl("apply", "-f", str(CLUSTER_SCRIPTS / "nodes.yaml"))
        self.wait_for(
            lambda: len([n for n in self.nodes() if node_ready(n)]) >= 6, timeout_s, "6 Ready GPU nodes"
        )

    # --- namespaces ----------------------------------------------------------------------------
    def create_namespace(self, prefix: str = "e2e") -> str:
        from kubernetes import client

        base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40] or "e2e"
        name = f"{base}-{uuid.uuid4().hex[:5]}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return name

    def delete_namespace(self, name: str, timeout_s: float = 90) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise

        def gone():
            try:
                self.core.read_namespace(name)
                return False
            except ApiException as exc:
                return exc.status == 404

        self.wait_for(gone, timeout_s, f"namespace {name} to be deleted", name, interval_s=0.5)


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def node_ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def condition(obj, type_: str):
    """The status condition of the given type, or None."""
    return next((c for c in (obj.status.conditions or []) if c.type == type_), None)


def _which(name: str, bin_dir: Path | None) -> str | None:
    if bin_dir is not None and (bin_dir / name).exists():
        return str(bin_dir / name)
    return shutil.which(name)


def _check_pools(cluster: Cluster) -> None:
    pools = {n.metadata.labels.get(POOL_LABEL) for n in cluster.nodes()}
    missing = {"on-demand", "spot"} - pools
    if missing:
        raise RuntimeError(
            f"{cluster.kubeconfig} has no nodes labelled {POOL_LABEL}={'/'.join(sorted(missing))}; "
            "refusing to run e2e tests on it. Unset KUBECONFIG to use the local kwok cluster, or see "
            "docs/cluster.md for the kind setup."
        )


def start_cluster() -> Cluster:
    """Bring up (or attach to) the e2e cluster as described in the module docstring."""
    profile = os.environ.get("LEADTIME_E2E_PROFILE", "kwok")
    if profile not in ("kwok", "kind"):
        raise RuntimeError(f"LEADTIME_E2E_PROFILE must be kwok or kind, got {profile!r}")
    external = os.environ.get("KUBECONFIG")
    if profile == "kind" and not external:
        raise RuntimeError("LEADTIME_E2E_PROFILE=kind needs KUBECONFIG pointing at the kind cluster")

    if external:
        bin_env = os.environ.get("LEADTIME_BIN_DIR")
        bin_dir = Path(bin_env) if bin_env else None
        values = {
            "LEADTIME_PROMETHEUS_URL": os.environ.get("LEADTIME_PROMETHEUS_URL", ""),
            "LEADTIME_PROMETHEUS_TARGETS_DIR": os.environ.get("LEADTIME_PROMETHEUS_TARGETS_DIR", ""),
        }
        if not values["LEADTIME_PROMETHEUS_URL"]:
            values.update(_run_script("prometheus.sh", "start"))
        cluster = Cluster(
            kubeconfig=Path(external.split(os.pathsep)[0]),
            kubectl_path=_which("kubectl", bin_dir) or "kubectl",
            helm_path=_which("helm", bin_dir),
            bin_dir=bin_dir,
            prometheus_url=values["LEADTIME_PROMETHEUS_URL"] or None,
            prometheus_targets_dir=Path(values["LEADTIME_PROMETHEUS_TARGETS_DIR"])
            if values["LEADTIME_PROMETHEUS_TARGETS_DIR"]
            else None,
            profile=profile,
        )
    else:
        values = _run_script("up.sh")
        bin_dir = Path(values["LEADTIME_BIN_DIR"])
        cluster = Cluster(
            kubeconfig=Path(values["KUBECONFIG"]),
            kubectl_path=str(bin_dir / "kubectl"),
            helm_path=_which("helm", bin_dir),
            bin_dir=bin_dir,
            prometheus_url=values["LEADTIME_PROMETHEUS_URL"],
            prometheus_targets_dir=Path(values["LEADTIME_PROMETHEUS_TARGETS_DIR"]),
            profile="kwok",
            created_by_us=values.get("LEADTIME_CLUSTER_CREATED") == "1",
        )
    _check_pools(cluster)
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Tear down what start_cluster created (nothing when it attached to an existing cluster)."""
    if cluster.created_by_us and os.environ.get("LEADTIME_E2E_TEARDOWN") == "1":
        _run_script("down.sh")


def _run_script(name: str, *args: str) -> dict[str, str]:
    # Build output and cluster logs go to stderr, passed through so a slow first build is visible;
    # stdout carries the KEY=VALUE lines.
    proc = subprocess.run(
        ["bash", str(CLUSTER_SCRIPTS / name), *args],
        stdout=subprocess.PIPE,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"e2e/cluster/{name} failed with exit code {proc.returncode} (see its stderr above)"
        )
    return _parse_env_lines(proc.stdout)


def gpu_deployment(
    name: str,
    replicas: int,
    gpus: int = 1,
    pool: str | None = None,
    tolerate_spot: bool = False,
    cold_start: str | None = None,
) -> dict:
    """A Deployment manifest of placeholder replicas asking for GPUs; pool selects a capacity type.

    cold_start is a Go duration ("4s", "1500ms") put on the pod template's leadtime.dev/cold-start
    annotation; on kwok the pod turns Ready that long after it starts (1s when absent).
    """
    annotations = {COLD_START_ANNOTATION: cold_start} if cold_start else {}
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "server",
                "image": PLACEHOLDER_IMAGE,
                "resources": {"requests": {GPU: str(gpus)}, "limits": {GPU: str(gpus)}},
            }
        ],
    }
    if pool:
        pod_spec["nodeSelector"] = {POOL_LABEL: pool}
    if tolerate_spot:
        pod_spec["tolerations"] = [SPOT_TOLERATION]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
