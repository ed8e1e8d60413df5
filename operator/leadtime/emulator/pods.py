"""Which pods of a ModelDeployment are Ready, by pool: pure parsing plus a thin kubernetes-client reader.

The emulator routes requests only to pods a real Service would route to: Ready, not terminating, and
labelled with a known pool. Terminating pods are listed apart: they drain until they vanish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadtime.policy.types import POOLS

MODEL_LABEL = "serving.leadtime.dev/model"
POOL_LABEL = "serving.leadtime.dev/pool"


def model_selector(model_deployment: str) -> str:
    """The label selector of all pods of one ModelDeployment."""
    return f"{MODEL_LABEL}={model_deployment}"


def ready_pods(pods: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Map pod name -> pool for the pods that are Ready and not terminating (pods as plain dicts)."""
    ready: dict[str, str] = {}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        pool = (metadata.get("labels") or {}).get(POOL_LABEL)
        if pool not in POOLS or metadata.get("deletionTimestamp"):
            continue
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready[metadata["name"]] = pool
    return ready


def terminating_pods(pods: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Map pod name -> pool for the pods with a deletionTimestamp that have not vanished yet."""
    terminating: dict[str, str] = {}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        pool = (metadata.get("labels") or {}).get(POOL_LABEL)
        if pool in POOLS and metadata.get("deletionTimestamp"):
            terminating[metadata["name"]] = pool
    return terminating


@dataclass(frozen=True)
class PodView:
    """One listing of a ModelDeployment's pods: those a Service routes to, and those draining."""

    ready: dict[str, str]
    terminating: dict[str, str] = field(default_factory=dict)


class PodLister:
    """Lists a ModelDeployment's pods through the kubernetes client; the only I/O of the pod view."""

    def __init__(self, kubeconfig: str | None, namespace: str, model_deployment: str) -> None:
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=kubeconfig)
        self._core = client.CoreV1Api(api_client)
        self._api_client = api_client
        self.namespace = namespace
        self.selector = model_selector(model_deployment)

    def ready_pods(self) -> dict[str, str]:
        return self.pods().ready

    def pods(self) -> PodView:
        result = self._core.list_namespaced_pod(
            self.namespace, label_selector=self.selector, _request_timeout=10
        )
        items = [self._api_client.sanitize_for_serialization(item) for item in result.items]
        return PodView(ready=ready_pods(items), terminating=terminating_pods(items))
