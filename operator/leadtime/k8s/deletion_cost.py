"""Which replicas a scale-down removes first: pod-deletion-cost from each pod's in-flight requests (pure).

The ReplicaSet controller deletes the pods with the lowest `controller.kubernetes.io/pod-deletion-cost`
first (among pods equally Ready). Setting each pod's cost to its in-flight requests just before a
scale-down makes the least busy replicas go, so the fewest requests have to drain.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from leadtime.k8s.builders import DELETION_COST_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, selector_labels

# The annotation is an int32.
MAX_DELETION_COST = 2**31 - 1


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid")
    return None


def owned_pods(
    pods: Iterable[Mapping[str, Any]],
    replica_sets: Iterable[Mapping[str, Any]],
    deployment: Mapping[str, Any],
    *,
    md_name: str,
    pool: str,
) -> list[Mapping[str, Any]]:
    """The live pods of `deployment`: controlled by one of its ReplicaSets and carrying leadtime's labels.

    Anything else matching the labels (a pod made by hand, another controller's) is left alone, and so
    are terminating pods: their cost no longer matters.
    """
    deployment_uid = (deployment.get("metadata") or {}).get("uid")
    own_sets = {(rs.get("metadata") or {}).get("uid") for rs in replica_sets if _controller_uid(rs) == deployment_uid}
    own_sets.discard(None)
    wanted = {MANAGED_BY_LABEL: MANAGED_BY, **selector_labels(md_name, pool)}
    result = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if metadata.get("deletionTimestamp") or any(labels.get(k) != v for k, v in wanted.items()):
            continue
        if _controller_uid(pod) in own_sets:
            result.append(pod)
    return result


def deletion_costs(pod_names: Iterable[str], in_flight: Mapping[str, float]) -> dict[str, int]:
    """Each pod's cost: its in-flight requests (running + waiting), rounded.

    A pod with no reading (not scraped yet) gets the median of the others: neither protected nor
    sacrificed on a guess. With no reading at all every pod gets 0, Kubernetes' own default, which also
    clears costs left by an earlier scale-down.
    """
    names = sorted(set(pod_names))
    known = [max(0.0, float(in_flight[n])) for n in names if n in in_flight]
    neutral = statistics.median(known) if known else 0.0
    return {n: min(MAX_DELETION_COST, round(max(0.0, float(in_flight.get(n, neutral))))) for n in names}


def cost_patches(pods: Iterable[Mapping[str, Any]], costs: Mapping[str, int]) -> dict[str, str]:
    """Pod name -> annotation value, only for pods whose annotation differs (each patch is an API call)."""
    patches = {}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        name = metadata.get("name")
        if name not in costs:
            continue
        value = str(costs[name])
        if (metadata.get("annotations") or {}).get(DELETION_COST_ANNOTATION) != value:
            patches[name] = value
    return patches
