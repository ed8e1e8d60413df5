"""`static`: peak provisioning — a fixed replica count, what teams do when they do not autoscale."""

from __future__ import annotations

import math
from collections.abc import Mapping

from leadtime.policy.types import (
    BATCH,
    INTERACTIVE,
    Decision,
    Memory,
    Observation,
    PolicyConfig,
    PoolDecision,
    PoolState,
)


class StaticPolicy:
    """Always `replicas` interactive replicas (within the warm floor and max)."""

    name = "static"
    interval_s = 60.0  # nothing changes; a slow tick keeps the simulator cheap

    def __init__(self, replicas: int = 10) -> None:
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        self.replicas = int(replicas)

    def params(self) -> dict[str, float]:
        return {"replicas": self.replicas}

    @staticmethod
    def default_sweep(config: PolicyConfig | None = None) -> list[dict[str, float]]:
        """Fixed counts from a quarter of max replicas up to max replicas."""
        max_replicas = (config or PolicyConfig()).max_replicas
        shares = (0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)
        counts = sorted({max(1, math.ceil(share * max_replicas)) for share in shares})
        return [{"replicas": count} for count in counts]

    def decide(
        self,
        config: PolicyConfig,
        observation: Observation,
        pools: Mapping[str, PoolState],
        memory: Memory,
        now_s: float,
    ) -> Decision:
        replicas = max(min(self.replicas, config.max_replicas), config.warm_floor)
        decisions = {INTERACTIVE: PoolDecision(replicas, f"static: fixed at {replicas} replicas")}
        if config.batch.enabled:
            batch_replicas = config.batch.max_replicas
            decisions[BATCH] = PoolDecision(batch_replicas, f"static: fixed at {batch_replicas} replicas")
        return Decision(pools=decisions, memory=dict(memory or {}))
