"""The cost ledger: spend rate, GPU-hours, cost per 1k requests and idle GPU share, integrated per tick.

Pure: the caller passes the elapsed time. Totals live in `.status` (and the two running sums the
status fields cannot carry live in the operator's memory), so a restarted operator keeps counting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadtime.policy.types import BATCH, INTERACTIVE, ClassObservation, Observation, PoolState

# After an operator outage the replicas kept running and were billed; integrate the gap with the current
# replica count, but not beyond this long, since a longer gap says nothing about what ran meanwhile.
MAX_GAP_S = 600.0


@dataclass(frozen=True)
class Prices:
    gpus_per_replica: int
    interactive_per_gpu_hour: float
    batch_per_gpu_hour: float
    max_concurrency: int

    def per_gpu_hour(self, pool: str) -> float:
        # The batch fallback runs on on-demand nodes and pays the on-demand price.
        return self.batch_per_gpu_hour if pool == BATCH else self.interactive_per_gpu_hour


@dataclass(frozen=True)
class Ledger:
    dollars: float = 0.0
    gpu_hours: float = 0.0
    idle_gpu_hours: float = 0.0
    requests_served: float = 0.0
    dollars_per_hour: float = 0.0

    @classmethod
    def from_memory(cls, memory: Mapping[str, Any] | None) -> Ledger:
        memory = memory or {}
        return cls(
            dollars=float(memory.get("dollars", 0.0)),
            gpu_hours=float(memory.get("gpuHours", 0.0)),
            idle_gpu_hours=float(memory.get("idleGpuHours", 0.0)),
            requests_served=float(memory.get("requestsServed", 0.0)),
        )

    def to_memory(self) -> dict[str, float]:
        return {
            "dollars": self.dollars,
            "gpuHours": self.gpu_hours,
            "idleGpuHours": self.idle_gpu_hours,
            "requestsServed": self.requests_served,
        }

    def to_status(self) -> dict[str, float | None]:
        """`.status.cost` (camelCase)."""
        return {
            "dollarsPerHour": round(self.dollars_per_hour, 4),
            "gpuHours": round(self.gpu_hours, 6),
            "costPer1kRequests": round(1000.0 * self.dollars / self.requests_served, 4)
            if self.requests_served >= 1
            else None,
            "idleGpuShare": round(self.idle_gpu_hours / self.gpu_hours, 4) if self.gpu_hours > 0 else None,
            "requestsServed": round(self.requests_served, 1),
        }


def _busy_share(pool: PoolState, served: ClassObservation, max_concurrency: int) -> float | None:
    """Share of a Ready replica's sequence slots in use; None when the metrics do not say."""
    if served.running is None or pool.ready_count == 0:
        return None
    return min(1.0, served.running / (pool.ready_count * max_concurrency))


def advance(
    ledger: Ledger, *, pools: Mapping[str, PoolState], observation: Observation, prices: Prices, elapsed_s: float
) -> Ledger:
    """The ledger `elapsed_s` later, billing every Ready or starting replica (a Pending pod has no node)."""
    hours = max(0.0, min(elapsed_s, MAX_GAP_S)) / 3600.0
    dollars_per_hour = 0.0
    gpu_hours = 0.0
    idle_gpu_hours = 0.0
    for pool, state in pools.items():
        ready_gpus = state.ready_count * prices.gpus_per_replica
        starting_gpus = state.starting_count * prices.gpus_per_replica
        dollars_per_hour += (ready_gpus + starting_gpus) * prices.per_gpu_hour(pool)
        gpu_hours += (ready_gpus + starting_gpus) * hours
        # A starting replica is billed and serves nothing; a Ready one is idle for its unused slots.
        served = observation.interactive if pool == INTERACTIVE else observation.batch
        busy = _busy_share(state, served, prices.max_concurrency) if observation.available else None
        idle_gpu_hours += starting_gpus * hours + (ready_gpus * hours * (1.0 - busy) if busy is not None else 0.0)
    served_rps = 0.0
    if observation.available:
        served_rps = (observation.interactive.arrival_rate_rps or 0.0) + (observation.batch.arrival_rate_rps or 0.0)
    return Ledger(
        dollars=ledger.dollars + dollars_per_hour * hours,
        gpu_hours=ledger.gpu_hours + gpu_hours,
        idle_gpu_hours=ledger.idle_gpu_hours + idle_gpu_hours,
        requests_served=ledger.requests_served + served_rps * hours * 3600.0,
        dollars_per_hour=dollars_per_hour,
    )
