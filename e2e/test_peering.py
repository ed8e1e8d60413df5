"""Two operator processes with the chart's arguments, peering name and ServiceAccount token, as the
chart's two replicas would run: exactly one acts (writes status), and after a SIGKILL of that one the
other takes over within 30 s."""

from __future__ import annotations

import json
import time

import pytest
from chart_install import (
    chart_operator,
    install,
    liveness_ok,
    manifests,
    release_args,
    release_model_deployments,
    service_account,
    token_kubeconfig,
    uninstall,
)
from leadtime.run_cli import peering_identity
from operator_process import apply, decision_lines, fast, get_md, install_crds, load_example

pytestmark = pytest.mark.e2e

TAKEOVER_LIMIT_S = 30
# Decisions the active replica must make while the standby is watched for any of its own.
OBSERVED_DECISIONS = 4


def priority_of(pod_name: str, monkeypatch) -> int:
    monkeypatch.setenv("POD_NAME", pod_name)
    return peering_identity()[1]


def peers(cluster, namespace: str, name: str) -> dict:
    obj = json.loads(cluster.kubectl("get", "kopfpeering", name, "-n", namespace, "-o", "json").stdout)
    return obj.get("status") or {}


def decisions_for(process, namespace: str) -> list[dict]:
    return [d for d in decision_lines(process) if d.get("namespace") == namespace]


def test_one_replica_acts_and_the_other_takes_over_after_sigkill(cluster, namespace, tmp_path, monkeypatch):
    install_crds(cluster)
    workloads = cluster.create_namespace("peering-md")
    release = namespace
    processes = []
    try:
        install(cluster, release, namespace,
                *release_args(release, watch_namespaces=[workloads], sets=(f"prometheusUrl={cluster.prometheus_url}",)))
        docs = manifests(cluster, release, namespace)
        kubeconfig = token_kubeconfig(cluster, service_account(docs), namespace, tmp_path / "sa.kubeconfig")

        names = [f"{release}-leadtime-{suffix}" for suffix in ("a", "b")]
        priorities = {n: priority_of(n, monkeypatch) for n in names}
        assert len(set(priorities.values())) == 2, priorities
        processes = [chart_operator(cluster, docs, kubeconfig, tmp_path / f"operator-{n[-1]}.log", pod_name=n)
                     for n in names]
        for p in processes:
            p.start()
        cluster.wait_for(lambda: all(liveness_ok(p) for p in processes), 30, "both operators' /healthz")
        # Both announce themselves, with their own priorities, in the chart's KopfPeering.
        listed = cluster.wait_for(lambda: (lambda s: s if set(s) >= set(names) else None)(
            peers(cluster, workloads, release)), 30, "both operators in the KopfPeering", workloads)
        assert {n: listed[n]["priority"] for n in names} == priorities

        apply(cluster, workloads, fast(load_example("llama-8b.yaml"), cold_start="2s", interval_s=1))
        active = cluster.wait_for(lambda: next((p for p in processes if decisions_for(p, workloads)), None), 60,
                                  "one operator to decide for llama-8b", workloads)
        standby = next(p for p in processes if p is not active)
        seen = len(decisions_for(active, workloads))
        cluster.wait_for(lambda: len(decisions_for(active, workloads)) >= seen + OBSERVED_DECISIONS, 30,
                         f"{OBSERVED_DECISIONS} more decisions by the active operator", workloads)
        # Every decision is a status write; the standby made none while the active one made several.
        assert decisions_for(standby, workloads) == [], standby.log()[-3000:]
        assert max(priorities, key=priorities.get) == active.env["POD_NAME"], "the lower priority acted"
        status = get_md(cluster, workloads, "llama-8b")["status"]
        assert status["readyReplicas"] == 1 and status["lastDecision"]["reason"]

        killed_at_wall, killed_at = time.time(), time.monotonic()
        active.kill()
        cluster.wait_for(lambda: decisions_for(standby, workloads), TAKEOVER_LIMIT_S + 15,
                         "the standby to take over", workloads, interval_s=0.1)
        takeover_s = time.monotonic() - killed_at
        # It was paused by peering, not merely slow: kopf logs the end of the pause when it takes over.
        assert "Resuming operations after the pause" in standby.log(), standby.log()[-3000:]
        print(f"peering takeover after SIGKILL: {takeover_s:.1f}s (limit {TAKEOVER_LIMIT_S}s, "
              f"peer lifetime 20s)")
        assert takeover_s < TAKEOVER_LIMIT_S

        def written_by_standby():
            status = get_md(cluster, workloads, "llama-8b")["status"]
            return status if _timestamp(status["lastDecision"]["at"]) > killed_at_wall else None

        status = cluster.wait_for(written_by_standby, 10, "a status write after the takeover", workloads)
        assert status["readyReplicas"] == 1

        cluster.kubectl("delete", "md", "llama-8b", "-n", workloads, "--wait=false")
        cluster.wait_for(lambda: not cluster.kubectl("get", "md", "-n", workloads, "-o", "name").stdout.strip(),
                         30, "the standby-turned-active to process the deletion", workloads)
    finally:
        for p in processes:
            p.stop()
        for p in processes:
            print(f"--- {p.env['POD_NAME']} log (tail)\n" + "\n".join(p.log().splitlines()[-15:]))
        release_model_deployments(cluster, workloads)
        uninstall(cluster, release, namespace)
        cluster.delete_namespace(workloads)


def _timestamp(value) -> float:
    """status.lastDecision.at as epoch seconds (it is written as an RFC 3339 string or a number)."""
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
