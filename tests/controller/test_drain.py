"""Graceful scale-down: the pod spec a replica drains with, and which replicas a scale-down removes."""

from __future__ import annotations

import copy

import pytest
from leadtime.api.models import DrainSpec
from leadtime.handlers.drain import in_flight_query, order_scale_down
from leadtime.handlers.reconcile import run_tick
from leadtime.k8s.builders import (
    DEFAULT_PRE_STOP_SLEEP_S,
    DEFAULT_TERMINATION_GRACE_PERIOD_S,
    DELETION_COST_ANNOTATION,
    build_deployment,
)
from leadtime.k8s.deletion_cost import cost_patches, deletion_costs, owned_pods

from tests.controller.test_k8s_builders import MD
from tests.controller.test_tick import MD as TICK_MD
from tests.controller.test_tick import FakeCluster, FakeSource, ScriptedPolicy, healthy, tick

# --- the pod spec


def test_pods_get_the_grace_period_and_a_native_sleep_prestop_from_spec_drain():
    md = copy.deepcopy(MD)
    md["spec"]["drain"] = {"terminationGracePeriodSeconds": 120, "preStopSleepSeconds": 15}
    pod = build_deployment(md, "interactive", replicas=1)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    # Every pool drains the same way.
    batch = build_deployment(md, "batch", replicas=0)["spec"]["template"]["spec"]
    assert batch["terminationGracePeriodSeconds"] == 120


def test_a_zero_prestop_sets_no_hook_and_defaults_match_the_api():
    md = copy.deepcopy(MD)
    md["spec"]["drain"] = {"terminationGracePeriodSeconds": 30, "preStopSleepSeconds": 0}
    pod = build_deployment(md, "interactive", replicas=1)["spec"]["template"]["spec"]
    assert "lifecycle" not in pod["containers"][0] and pod["terminationGracePeriodSeconds"] == 30
    defaults = DrainSpec()
    assert (DEFAULT_TERMINATION_GRACE_PERIOD_S, DEFAULT_PRE_STOP_SLEEP_S) == (
        defaults.termination_grace_period_seconds, defaults.pre_stop_sleep_seconds)
    pod = build_deployment(MD, "interactive", replicas=1)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == defaults.termination_grace_period_seconds


# --- which pod gets which cost


def test_cost_is_the_in_flight_count_and_a_pod_without_a_reading_gets_the_median():
    costs = deletion_costs(["a", "b", "c", "d"], {"a": 7.0, "b": 0.4, "c": 3.0})
    assert costs == {"a": 7, "b": 0, "c": 3, "d": 3}
    assert deletion_costs(["a", "b"], {}) == {"a": 0, "b": 0}
    assert deletion_costs(["a"], {"a": 1e12, "z": 5})["a"] == 2**31 - 1  # an int32; unknown pods ignored
    assert deletion_costs(["a"], {"a": -2.0}) == {"a": 0}


def _pod(name, rs_uid, *, pool="interactive", model="llama", managed=True, deleting=False, cost=None):
    labels = {"serving.leadtime.dev/model": model, "serving.leadtime.dev/pool": pool}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "leadtime"
    meta = {"name": name, "labels": labels,
            "ownerReferences": [{"kind": "ReplicaSet", "uid": rs_uid, "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if cost is not None:
        meta["annotations"] = {DELETION_COST_ANNOTATION: cost}
    return {"metadata": meta}


DEPLOYMENT = {"metadata": {"name": "llama", "uid": "dep-1"}}
REPLICA_SETS = [
    {"metadata": {"uid": "rs-old", "ownerReferences": [{"kind": "Deployment", "uid": "dep-1", "controller": True}]}},
    {"metadata": {"uid": "rs-new", "ownerReferences": [{"kind": "Deployment", "uid": "dep-1", "controller": True}]}},
    {"metadata": {"uid": "rs-foreign", "ownerReferences": [{"kind": "Deployment", "uid": "other", "controller": True}]}},
]


def test_only_live_pods_of_our_own_deployments_replicasets_are_ours():
    pods = [
        _pod("mine-1", "rs-old"), _pod("mine-2", "rs-new"),
        _pod("foreign", "rs-foreign"),  # same labels, someone else's ReplicaSet
        _pod("unmanaged", "rs-new", managed=False),
        _pod("other-pool", "rs-new", pool="batch"),
        _pod("leaving", "rs-new", deleting=True),
        {"metadata": {"name": "bare", "labels": _pod("x", "")["metadata"]["labels"]}},
    ]
    mine = owned_pods(pods, REPLICA_SETS, DEPLOYMENT, md_name="llama", pool="interactive")
    assert [p["metadata"]["name"] for p in mine] == ["mine-1", "mine-2"]


def test_only_changed_annotations_are_patched():
    pods = [_pod("a", "rs-new", cost="3"), _pod("b", "rs-new", cost="1"), _pod("c", "rs-new")]
    assert cost_patches(pods, {"a": 3, "b": 0, "c": 5}) == {"b": "0", "c": "5"}


# --- the shell around it


class FakePods:
    def __init__(self, pods):
        self.pods, self.patched, self.fail = pods, [], False

    def pool_pods(self, md, pool):
        if self.fail:
            raise RuntimeError("apiserver down")
        return self.pods

    def annotate_deletion_costs(self, md, values):
        self.patched.append(dict(values))


MD_REF = {"metadata": {"name": "llama", "namespace": "ml"}}


def test_order_scale_down_reads_the_pools_pods_load_and_patches_their_costs():
    pods = FakePods([_pod("busy", "rs-new"), _pod("idle", "rs-new"), _pod("new", "rs-new")])
    queries = []

    def read(url, query):
        queries.append((url, query))
        return {"busy": 6.0, "idle": 1.0}

    costs = order_scale_down(MD_REF, "interactive", "http://prom:9090", cluster=pods, read_in_flight=read)
    assert costs == {"busy": 6, "idle": 1, "new": 4}  # "new" has no reading yet: the median
    assert pods.patched == [{"busy": "6", "idle": "1", "new": "4"}]
    assert queries == [("http://prom:9090", in_flight_query("ml", "llama", "interactive"))]
    assert 'pool="interactive"' in queries[0][1] and "by (pod)" in queries[0][1]


def test_order_scale_down_never_fails_the_scale_down():
    pods = FakePods([_pod("a", "rs-new"), _pod("b", "rs-new")])

    def unreachable(url, query):
        raise ConnectionError("refused")

    assert order_scale_down(MD_REF, "interactive", "http://prom:9090", cluster=pods,
                            read_in_flight=unreachable) == {"a": 0, "b": 0}
    pods.fail = True
    assert order_scale_down(MD_REF, "interactive", "http://prom:9090", cluster=pods, read_in_flight=unreachable) == {}


class RecordingCluster(FakeCluster):
    def __init__(self, desired):
        super().__init__(desired=desired, ready=desired)
        self.calls = []

    def scale(self, md, pool, replicas):
        self.calls.append(("scale", pool, replicas))
        super().scale(md, pool, replicas)


def _tick_with_hook(cluster, replicas, md=None):
    def hook(md, pool, url):
        cluster.calls.append(("costs", pool, url))
        return {"pod-a": 0, "pod-b": 5}

    body = copy.deepcopy(md or TICK_MD)
    body["status"] = copy.deepcopy(cluster.status)
    return run_tick(body, cluster=cluster, metrics_source=lambda url: FakeSource(healthy), decide=ScriptedPolicy(replicas),
                    post_event=lambda *a: None, now_s=1_750_000_000.0, before_scale_down=hook)


@pytest.mark.parametrize(("desired", "decided", "annotated"), [(4, 2, True), (2, 4, False), (3, 3, False)])
def test_costs_are_set_just_before_a_scale_down_and_on_no_other_tick(desired, decided, annotated):
    cluster = RecordingCluster(desired)
    result = _tick_with_hook(cluster, decided)
    if annotated:
        assert cluster.calls == [("costs", "interactive", "http://prometheus.test:9090"), ("scale", "interactive", 2)]
        assert result.deletion_costs == {"interactive": {"pod-a": 0, "pod-b": 5}}
    else:
        assert [c for c in cluster.calls if c[0] == "costs"] == [] and result.deletion_costs == {}


def test_shadow_mode_sets_no_costs():
    md = copy.deepcopy(TICK_MD)
    md["spec"]["mode"] = "shadow"
    cluster = RecordingCluster(4)
    _tick_with_hook(cluster, 2, md=md)
    assert cluster.calls == []


def test_ticks_without_the_hook_still_scale_down():
    cluster = FakeCluster(desired=4, ready=4)
    tick(cluster, ScriptedPolicy(2))
    assert cluster.scaled == [("interactive", 2)]


# --- the Kubernetes calls, against a recording fake of the client


class _Response:
    def __init__(self, obj):
        self.data = __import__("json").dumps(obj).encode()


class FakeApi:
    """Answers the few client calls the drain path makes and records the writes."""

    def __init__(self, deployment=None, replica_sets=(), pods=(), missing_pods=()):
        self.deployment, self.replica_sets, self.pods = deployment, list(replica_sets), list(pods)
        self.missing_pods = set(missing_pods)
        self.patches: list[tuple[str, dict]] = []

    def create_namespaced_deployment(self, namespace, manifest, **_):
        from kubernetes.client.exceptions import ApiException

        raise ApiException(status=409)

    def patch_namespaced_deployment(self, name, namespace, patch, **_):
        self.patches.append((name, patch))

    def read_namespaced_deployment(self, name, namespace, **_):
        from kubernetes.client.exceptions import ApiException

        if self.deployment is None:
            raise ApiException(status=404)
        return _Response(self.deployment)

    def list_namespaced_replica_set(self, namespace, **_):
        return _Response({"items": self.replica_sets})

    def list_namespaced_pod(self, namespace, **_):
        return _Response({"items": self.pods})

    def patch_namespaced_pod(self, name, namespace, patch, **_):
        from kubernetes.client.exceptions import ApiException

        if name in self.missing_pods:
            raise ApiException(status=404)
        self.patches.append((name, patch))


def _cluster(api):
    from leadtime.k8s.cluster import Cluster

    cluster = Cluster.__new__(Cluster)
    cluster.apps = cluster.core = api
    return cluster


def test_switching_the_prestop_off_removes_the_hook_from_an_existing_deployment():
    md = copy.deepcopy(MD)
    for pre_stop_s, lifecycle in [(0, None), (5, {"preStop": {"sleep": {"seconds": 5}}})]:
        md["spec"]["drain"] = {"terminationGracePeriodSeconds": 60, "preStopSleepSeconds": pre_stop_s}
        api = FakeApi()
        _cluster(api)._ensure_deployment(md, "interactive")
        (_, patch), = api.patches
        pod = patch["spec"]["template"]["spec"]
        # None in a strategic merge patch deletes the field.
        assert pod["containers"][0]["lifecycle"] == lifecycle and pod["terminationGracePeriodSeconds"] == 60


def test_pool_pods_are_those_of_our_deployment_and_a_vanished_pod_is_skipped():
    md = copy.deepcopy(MD)
    owner = {"uid": "u-1", "controller": True}
    deployment = {"metadata": {"name": "llama", "uid": "dep-1", "ownerReferences": [owner]}}
    api = FakeApi(deployment, REPLICA_SETS, [_pod("mine-1", "rs-new"), _pod("foreign", "rs-foreign")],
                  missing_pods={"gone"})
    cluster = _cluster(api)
    assert [p["metadata"]["name"] for p in cluster.pool_pods(md, "interactive")] == ["mine-1"]
    cluster.annotate_deletion_costs(md, {"mine-1": "3", "gone": "1"})
    assert api.patches == [("mine-1", {"metadata": {"annotations": {DELETION_COST_ANNOTATION: "3"}}})]
    # A Deployment of the same name that is not ours, or none at all: nothing to annotate.
    assert _cluster(FakeApi({"metadata": {"uid": "x", "ownerReferences": []}}, REPLICA_SETS,
                            [_pod("mine-1", "rs-new")])).pool_pods(md, "interactive") == []
    assert _cluster(FakeApi(None)).pool_pods(md, "interactive") == []
