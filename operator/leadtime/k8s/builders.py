"""Pure builders for the children a ModelDeployment owns: one Deployment and one Service per pool.

`md` is the ModelDeployment as the API returns it (metadata + camelCase spec with defaults applied).
The builders read no clock and make no calls; the same input always gives the same manifest.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from leadtime.policy.types import BATCH, BATCH_ONDEMAND, INTERACTIVE

GROUP = "serving.leadtime.dev"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "leadtime"
MODEL_LABEL = "serving.leadtime.dev/model"
POOL_LABEL = "serving.leadtime.dev/pool"
# The request class a pod serves: the batch Service spans the spot pool and its on-demand fallback.
CLASS_LABEL = "serving.leadtime.dev/class"
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER_NAME = "model"
# The ReplicaSet controller removes the pods with the lowest cost first when it scales down.
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
# spec.drain's defaults (leadtime.api.models.DrainSpec), for manifests built from a spec without them.
DEFAULT_TERMINATION_GRACE_PERIOD_S = 600
DEFAULT_PRE_STOP_SLEEP_S = 10


def child_name(md_name: str, pool: str) -> str:
    """The interactive pool keeps the ModelDeployment's own name; the others get a suffix."""
    return md_name if pool == INTERACTIVE else f"{md_name}-{pool}"


def pools_of(md: Mapping[str, Any]) -> tuple[str, ...]:
    """The pools this ModelDeployment runs: interactive always; batch and its on-demand fallback if enabled."""
    batch = ((md.get("spec") or {}).get("pools") or {}).get("batch") or {}
    if not batch.get("enabled"):
        return (INTERACTIVE,)
    fallback = batch.get("onDemandFallback") or {}
    return (INTERACTIVE, BATCH, BATCH_ONDEMAND) if fallback.get("enabled", True) else (INTERACTIVE, BATCH)


def selector_labels(md_name: str, pool: str) -> dict[str, str]:
    return {MODEL_LABEL: md_name, POOL_LABEL: pool}


def request_class(pool: str) -> str:
    return "interactive" if pool == INTERACTIVE else "batch"


def service_pools(md: Mapping[str, Any]) -> tuple[str, ...]:
    """One Service per request class, named after the class's first pool (`<name>`, `<name>-batch`)."""
    return tuple(pool for pool in pools_of(md) if pool != BATCH_ONDEMAND)


def labels(md_name: str, pool: str) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        "app.kubernetes.io/name": md_name,
        CLASS_LABEL: request_class(pool),
        **selector_labels(md_name, pool),
    }


def owner_reference(md: Mapping[str, Any]) -> dict[str, Any]:
    metadata = md["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(md: Mapping[str, Any], pool: str) -> dict[str, Any]:
    name = md["metadata"]["name"]
    return {
        "name": child_name(name, pool),
        "namespace": md["metadata"]["namespace"],
        "labels": labels(name, pool),
        "ownerReferences": [owner_reference(md)],
    }


def placement(spec: Mapping[str, Any], pool: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """nodeSelector and tolerations: batch runs where the batch pool says; its fallback where interactive runs."""
    pools = spec.get("pools") or {}
    source = pools.get("batch") if pool == BATCH else pools.get("interactive")
    source = source or {}
    return dict(source.get("nodeSelector") or {}), copy.deepcopy(list(source.get("tolerations") or []))


def _env(env: Any) -> list[dict[str, Any]]:
    if isinstance(env, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in env.items()]
    return copy.deepcopy(list(env or []))


def _resources(model: Mapping[str, Any]) -> dict[str, Any]:
    resources = copy.deepcopy(dict(model.get("resources") or {}))
    gpus = int(model.get("gpus", 1))
    if gpus > 0:
        for section in ("requests", "limits"):
            resources.setdefault(section, {})[GPU_RESOURCE] = str(gpus)
    return resources


def drain_seconds(spec: Mapping[str, Any]) -> tuple[int, int]:
    """(terminationGracePeriodSeconds, preStop sleep seconds) from spec.drain, defaults as in the API."""
    drain = spec.get("drain") or {}
    return (int(drain.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD_S)),
            int(drain.get("preStopSleepSeconds", DEFAULT_PRE_STOP_SLEEP_S)))


def build_deployment(md: Mapping[str, Any], pool: str, *, replicas: int) -> dict[str, Any]:
    """The Deployment that runs `pool`'s replicas. `replicas` is only used when it is first created."""
    spec = md["spec"]
    model = spec["model"]
    name = md["metadata"]["name"]
    port = int(model.get("port", 8000))
    node_selector, tolerations = placement(spec, pool)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": model["image"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": _resources(model),
        # vLLM answers /health once the weights are loaded: Ready means able to serve.
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5, "failureThreshold": 3},
    }
    if model.get("args"):
        container["args"] = [str(a) for a in model["args"]]
    if model.get("env"):
        container["env"] = _env(model["env"])
    grace_s, pre_stop_s = drain_seconds(spec)
    if pre_stop_s > 0:
        # The native sleep action (Kubernetes >= 1.30) needs no shell in the image. While it runs the pod
        # is already out of the Service's endpoints, so it takes no new requests before SIGTERM.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop_s}}}
    pod_spec: dict[str, Any] = {"terminationGracePeriodSeconds": grace_s, "containers": [container]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    template_metadata: dict[str, Any] = {"labels": labels(name, pool)}
    if model.get("podAnnotations"):
        template_metadata["annotations"] = {str(k): str(v) for k, v in model["podAnnotations"].items()}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(md, pool),
        "spec": {
            "replicas": int(replicas),
            "selector": {"matchLabels": selector_labels(name, pool)},
            # A GPU replica is expensive: roll one at a time without surging past what was decided.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": template_metadata, "spec": pod_spec},
        },
    }


def build_service(md: Mapping[str, Any], pool: str) -> dict[str, Any]:
    """A ClusterIP Service in front of the Ready replicas of `pool`'s request class, on the model's port."""
    port = int(md["spec"]["model"].get("port", 8000))
    name = md["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(md, pool),
        "spec": {
            "type": "ClusterIP",
            "selector": {MODEL_LABEL: name, CLASS_LABEL: request_class(pool)},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
