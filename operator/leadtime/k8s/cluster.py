"""Cluster I/O with the kubernetes client: children create-or-patch, pool reads, scale, status.

Everything here reads and writes plain API dicts (camelCase), so the pure builders and readers can be
tested without a cluster. Conflicts (409) are retried; a child is created whole or not at all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from leadtime.k8s.builders import (
    DELETION_COST_ANNOTATION,
    GROUP,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_LABEL,
    PLURAL,
    POOL_LABEL,
    VERSION,
    build_deployment,
    build_service,
    child_name,
    pools_of,
    selector_labels,
    service_pools,
)
from leadtime.k8s.deletion_cost import owned_pods
from leadtime.k8s.pods import pool_state
from leadtime.policy.types import INTERACTIVE, PoolState

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# Conflicts come from a concurrent writer (another controller, kubectl); a few quick retries settle them.
CONFLICT_RETRIES = 5
CONFLICT_BACKOFF_S = 0.2
# An API call that hangs would stall one ModelDeployment's ticks; a short timeout lets the next tick retry.
REQUEST_TIMEOUT_S = 10.0

T = TypeVar("T")


def retry_on_conflict(call: Callable[[], T], *, retries: int = CONFLICT_RETRIES) -> T:
    for attempt in range(retries):
        try:
            return call()
        except ApiException as err:
            if err.status != 409 or attempt == retries - 1:
                raise
            time.sleep(CONFLICT_BACKOFF_S * (attempt + 1))
    raise AssertionError("unreachable")


def _json(response: Any) -> dict[str, Any]:
    data = response.data if hasattr(response, "data") else response.read()
    return json.loads(data)


def initial_replicas(md: Mapping[str, Any], pool: str) -> int:
    """Replicas a new child starts with: the declared warm floor for interactive, none for batch pools."""
    if pool != INTERACTIVE:
        return 0
    return int(((md.get("spec") or {}).get("replicas") or {}).get("warmFloor", 1))


class Cluster:
    """The Kubernetes API as the operator uses it."""

    def __init__(self, api_client: client.ApiClient | None = None):
        self.api_client = api_client or client.ApiClient()
        self.apps = client.AppsV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    # children -------------------------------------------------------------------------------------

    def ensure_children(self, md: Mapping[str, Any]) -> list[str]:
        """Create missing children, bring existing ones to the spec (never touching replicas), remove
        children of pools that were switched off. Returns what changed, for the log."""
        changes: list[str] = []
        namespace = md["metadata"]["namespace"]
        for pool in pools_of(md):
            changes += self._ensure_deployment(md, pool)
        for pool in service_pools(md):
            changes += self._ensure_service(md, pool)
        changes += self._remove_disabled(md, namespace)
        return changes

    def _ensure_deployment(self, md: Mapping[str, Any], pool: str) -> list[str]:
        manifest = build_deployment(md, pool, replicas=initial_replicas(md, pool))
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            self.apps.create_namespaced_deployment(namespace, manifest, _request_timeout=REQUEST_TIMEOUT_S)
            return [f"created Deployment {name}"]
        except ApiException as err:
            if err.status != 409:
                raise
        # It exists: patch everything we own except replicas, which only the control loop changes.
        patch = {"metadata": {k: manifest["metadata"][k] for k in ("labels", "ownerReferences")},
                 "spec": {k: v for k, v in manifest["spec"].items() if k not in ("replicas", "selector")}}
        # A strategic merge patch keeps what it does not mention: a preStop hook switched off
        # (drain.preStopSleepSeconds 0) is removed by saying so.
        for container in patch["spec"]["template"]["spec"]["containers"]:
            container.setdefault("lifecycle", None)
        retry_on_conflict(lambda: self.apps.patch_namespaced_deployment(
            name, namespace, patch, _content_type=STRATEGIC_MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT_S))
        return []

    def _ensure_service(self, md: Mapping[str, Any], pool: str) -> list[str]:
        manifest = build_service(md, pool)
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            self.core.create_namespaced_service(namespace, manifest, _request_timeout=REQUEST_TIMEOUT_S)
            return [f"created Service {name}"]
        except ApiException as err:
            if err.status != 409:
                raise
        patch = {"metadata": {k: manifest["metadata"][k] for k in ("labels", "ownerReferences")},
                 "spec": {"selector": manifest["spec"]["selector"], "ports": manifest["spec"]["ports"]}}
        retry_on_conflict(lambda: self.core.patch_namespaced_service(
            name, namespace, patch, _content_type=STRATEGIC_MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT_S))
        return []

    def _remove_disabled(self, md: Mapping[str, Any], namespace: str) -> list[str]:
        name = md["metadata"]["name"]
        wanted_deployments = {child_name(name, pool) for pool in pools_of(md)}
        wanted_services = {child_name(name, pool) for pool in service_pools(md)}
        selector = f"{MODEL_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        removed = []
        for item in _json(self.apps.list_namespaced_deployment(
                namespace, label_selector=selector, _preload_content=False))["items"]:
            if item["metadata"]["name"] not in wanted_deployments and _owned_by(item, md):
                self._delete(self.apps.delete_namespaced_deployment, item["metadata"]["name"], namespace)
                removed.append(f"deleted Deployment {item['metadata']['name']}")
        for item in _json(self.core.list_namespaced_service(
                namespace, label_selector=selector, _preload_content=False))["items"]:
            if item["metadata"]["name"] not in wanted_services and _owned_by(item, md):
                self._delete(self.core.delete_namespaced_service, item["metadata"]["name"], namespace)
                removed.append(f"deleted Service {item['metadata']['name']}")
        return removed

    @staticmethod
    def _delete(delete: Callable[..., Any], name: str, namespace: str) -> None:
        try:
            delete(name, namespace, propagation_policy="Background")
        except ApiException as err:
            if err.status != 404:
                raise

    # pools ----------------------------------------------------------------------------------------

    def read_pools(self, md: Mapping[str, Any], now_s: float) -> dict[str, PoolState]:
        """Each pool's Deployment replicas and pods. A pool whose Deployment is missing reads as empty."""
        namespace, name = md["metadata"]["namespace"], md["metadata"]["name"]
        selector = f"{MODEL_LABEL}={name}"
        desired: dict[str, int] = {}
        for item in _json(self.apps.list_namespaced_deployment(
                namespace, label_selector=selector, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_S))["items"]:
            pool = (item["metadata"].get("labels") or {}).get(POOL_LABEL)
            if pool and _owned_by(item, md):
                desired[pool] = int(item["spec"].get("replicas") or 0)
        pods_by_pool: dict[str, list[dict[str, Any]]] = {}
        for pod in _json(self.core.list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_S))["items"]:
            pool = (pod["metadata"].get("labels") or {}).get(POOL_LABEL)
            if pool:
                pods_by_pool.setdefault(pool, []).append(pod)
        return {
            pool: pool_state(pods_by_pool.get(pool, []), desired=desired.get(pool, 0), now_s=now_s)
            for pool in pools_of(md)
        }

    def scale(self, md: Mapping[str, Any], pool: str, replicas: int) -> None:
        """Set one pool's Deployment replicas through the scale subresource."""
        namespace, name = md["metadata"]["namespace"], child_name(md["metadata"]["name"], pool)
        retry_on_conflict(lambda: self.apps.patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": int(replicas)}}, _content_type=MERGE_PATCH,
            _request_timeout=REQUEST_TIMEOUT_S))

    def pool_pods(self, md: Mapping[str, Any], pool: str) -> list[Mapping[str, Any]]:
        """The live pods of `pool`'s own Deployment (through its ReplicaSets); none if it is not ours."""
        namespace, name = md["metadata"]["namespace"], md["metadata"]["name"]
        try:
            deployment = _json(self.apps.read_namespaced_deployment(
                child_name(name, pool), namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S))
        except ApiException as err:
            if err.status == 404:
                return []
            raise
        if not _owned_by(deployment, md):
            return []
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(name, pool).items())
        replica_sets = _json(self.apps.list_namespaced_replica_set(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S))["items"]
        pods = _json(self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S))["items"]
        return owned_pods(pods, replica_sets, deployment, md_name=name, pool=pool)

    def annotate_deletion_costs(self, md: Mapping[str, Any], values: Mapping[str, str]) -> None:
        """Set pod-deletion-cost on the named pods (a pod gone meanwhile is skipped)."""
        namespace = md["metadata"]["namespace"]
        for pod_name, value in values.items():
            patch = {"metadata": {"annotations": {DELETION_COST_ANNOTATION: value}}}
            try:
                self.core.patch_namespaced_pod(pod_name, namespace, patch, _content_type=MERGE_PATCH,
                                               _request_timeout=REQUEST_TIMEOUT_S)
            except ApiException as err:
                if err.status != 404:
                    raise

    # status ---------------------------------------------------------------------------------------

    def patch_status(self, md: Mapping[str, Any], patch: Mapping[str, Any]) -> None:
        """JSON-merge-patch `.status` (the caller sends nulls for keys to remove)."""
        namespace, name = md["metadata"]["namespace"], md["metadata"]["name"]
        retry_on_conflict(lambda: self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": dict(patch)}, _content_type=MERGE_PATCH,
            _request_timeout=REQUEST_TIMEOUT_S))


def _owned_by(item: Mapping[str, Any], md: Mapping[str, Any]) -> bool:
    uid = md["metadata"].get("uid")
    return any(ref.get("uid") == uid for ref in item["metadata"].get("ownerReferences") or ())
