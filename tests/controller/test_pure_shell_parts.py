"""The operator's pure parts stay pure, and the cost ledger's arithmetic a user would check."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from leadtime.handlers.ledger import MAX_GAP_S, Ledger, Prices, advance
from leadtime.policy.types import ClassObservation, Observation, PoolState, ReadyPod

PURE = ["leadtime.k8s.builders", "leadtime.k8s.pods", "leadtime.k8s.deletion_cost", "leadtime.metrics.promql",
        "leadtime.handlers.ledger", "leadtime.handlers.status"]
FORBIDDEN = {"kopf", "kubernetes", "requests", "prometheus_api_client", "time", "urllib3"}


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io(module):
    source = Path(importlib.util.find_spec(module).origin).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{module} imports {imported & FORBIDDEN}"


PRICES = Prices(gpus_per_replica=4, interactive_per_gpu_hour=3.0, batch_per_gpu_hour=1.0, max_concurrency=10)


def ready(n):
    return tuple(ReadyPod(ready_at_s=0.0, cold_start_s=10.0) for _ in range(n))


def test_each_pool_pays_its_price_and_pending_pods_cost_nothing():
    pools = {
        "interactive": PoolState(desired=1, ready=ready(1)),
        "batch": PoolState(desired=3, ready=ready(1), starting_ages_s=(5.0,), pending_ages_s=(5.0,)),
        "batch-ondemand": PoolState(desired=1, ready=ready(1)),
    }
    obs = Observation(at_s=0, interactive=ClassObservation(running=10), batch=ClassObservation(running=5))
    ledger = advance(Ledger(), pools=pools, observation=obs, prices=PRICES, elapsed_s=3600)
    # interactive 4 GPUs x $3, batch 8 GPUs x $1 (spot), fallback 4 GPUs x $3 (on-demand).
    assert ledger.dollars_per_hour == 12 + 8 + 12
    assert ledger.gpu_hours == pytest.approx(MAX_GAP_S / 3600 * 16)


def test_idle_share_counts_starting_replicas_and_unused_slots():
    pools = {"interactive": PoolState(desired=2, ready=ready(1), starting_ages_s=(1.0,))}
    obs = Observation(at_s=0, interactive=ClassObservation(running=5))
    ledger = advance(Ledger(), pools=pools, observation=obs, prices=PRICES, elapsed_s=360)
    # Half the GPUs are starting (idle), the Ready half uses 5 of 10 slots: 3/4 idle.
    assert ledger.to_status()["idleGpuShare"] == 0.75
    restored = Ledger.from_memory(ledger.to_memory())
    assert restored.to_status()["gpuHours"] == ledger.to_status()["gpuHours"]
