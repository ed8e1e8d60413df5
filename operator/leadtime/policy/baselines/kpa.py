"""`kpa`: the Knative Pod Autoscaler, concurrency mode.

Re-implemented from knative/serving `pkg/autoscaler/scaling/autoscaler.go` (`autoscaler.Scale`) with
the defaults of `config/core/configmaps/autoscaler.yaml`:

- tick every 2 s; observed concurrency (waiting + running requests, what the queue-proxies report)
  averaged over the stable window (`stable-window`, default 60 s; a parameter here, as the
  `autoscaling.knative.dev/window` annotation is for users) and the panic window, 10 % of the stable
  window (`panic-window-percentage` 10, kept: 6 s by default);
- target per pod = concurrency target × 0.7 (`container-concurrency-target-percentage`);
- `desiredStable = ceil(stableAverage / target)`, `desiredPanic = ceil(panicAverage / target)`,
  both kept within `[floor(ready / 2), ceil(1000 × ready)]` (max-scale-down-rate 2,
  max-scale-up-rate 1000; `ready` is the Ready pod count, at least 1);
- panic when `desiredPanic / ready ≥ 2` (panic-threshold-percentage 200); while panicking the pod
  count never decreases; panic ends once a whole stable window passes below the threshold;
- min-scale is the warm floor; with a floor of 0, scale to zero after the 30 s grace period.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

from leadtime.policy.baselines.common import decide_each_pool, geometric_grid, in_flight
from leadtime.policy.types import (
    BATCH,
    INTERACTIVE,
    ClassObservation,
    Decision,
    Memory,
    Observation,
    PolicyConfig,
    PoolState,
)

TICK_S = 2.0
STABLE_WINDOW_S = 60.0
PANIC_WINDOW_PERCENTAGE = 10.0
PANIC_THRESHOLD = 2.0
TARGET_UTILIZATION = 0.7
MAX_SCALE_UP_RATE = 1000.0
MAX_SCALE_DOWN_RATE = 2.0
SCALE_TO_ZERO_GRACE_S = 30.0


def window_average(samples: list[list[float]], now_s: float, window_s: float) -> float:
    in_window = [value for at_s, value in samples if now_s - at_s < window_s]
    return sum(in_window) / len(in_window) if in_window else 0.0


def kpa_step(
    target_concurrency: float,
    observation: ClassObservation,
    pool: PoolState,
    min_scale: int,
    max_scale: int,
    memory: Memory | None,
    now_s: float,
    *,
    stable_window_s: float = STABLE_WINDOW_S,
) -> tuple[int, str, Memory]:
    """One Scale() tick for one pool: (replicas, reason, memory)."""
    previous = memory or {}
    concurrency = in_flight(observation)
    if concurrency is None:
        return pool.desired, "kpa: no data to scale on yet, keeping replicas", dict(previous)
    panic_window_s = stable_window_s * PANIC_WINDOW_PERCENTAGE / 100.0
    samples = [s for s in previous.get("samples", []) if now_s - s[0] < stable_window_s]
    samples.append([now_s, concurrency])
    stable_average = window_average(samples, now_s, stable_window_s)
    panic_average = window_average(samples, now_s, panic_window_s)

    ready = max(1.0, float(pool.ready_count))
    target_value = target_concurrency * TARGET_UTILIZATION
    max_scale_up = math.ceil(MAX_SCALE_UP_RATE * ready)
    max_scale_down = math.floor(ready / MAX_SCALE_DOWN_RATE)
    desired_for_stable_window = math.ceil(stable_average / target_value)
    desired_for_panic_window = math.ceil(panic_average / target_value)
    desired_stable = int(min(max(desired_for_stable_window, max_scale_down), max_scale_up))
    desired_panic = int(min(max(desired_for_panic_window, max_scale_down), max_scale_up))

    panic_since_s = previous.get("panic_time_s")
    max_panic_pods = int(previous.get("max_panic_pods", 0))
    if "samples" not in previous and pool.ready_count > 1:
        # A fresh autoscaler starts in panic mode so it does not scale down on an empty history.
        panic_since_s, max_panic_pods = now_s, pool.ready_count
    over_panic_threshold = desired_for_panic_window / ready >= PANIC_THRESHOLD
    if over_panic_threshold:
        panic_since_s = now_s
    elif panic_since_s is not None and panic_since_s + stable_window_s < now_s:
        panic_since_s, max_panic_pods = None, 0

    desired = desired_stable
    mode = "stable"
    if panic_since_s is not None:
        mode = "panic"
        desired = max(desired, desired_panic)
        max_panic_pods = max(max_panic_pods, desired)
        desired = max_panic_pods

    # Scale to zero only after the grace period without traffic.
    zero_since_s = previous.get("zero_since_s")
    if desired == 0:
        zero_since_s = now_s if zero_since_s is None else zero_since_s
        if now_s - zero_since_s < SCALE_TO_ZERO_GRACE_S:
            desired = max(pool.desired, 0)
            desired = min(desired, 1)
    else:
        zero_since_s = None
    replicas = max(min(desired, max_scale), min_scale)
    reason = (
        f"kpa {mode}: concurrency stable {stable_average:.1f} / panic {panic_average:.1f} over target "
        f"{target_value:.1f} per pod → {replicas}"
    )
    new_memory: Memory = {
        "samples": samples,
        "panic_time_s": panic_since_s,
        "max_panic_pods": max_panic_pods,
        "zero_since_s": zero_since_s,
    }
    return replicas, reason, new_memory


class KpaPolicy:
    """Knative's KPA with a soft concurrency target per pod."""

    name = "kpa"
    interval_s = TICK_S

    def __init__(self, target_concurrency: float = 32.0, stable_window_s: float = STABLE_WINDOW_S) -> None:
        if not target_concurrency > 0:
            raise ValueError("target_concurrency must be positive")
        # Knative validates the window to [6 s, 1 h] (autoscaling.knative.dev/window).
        if not 6.0 <= stable_window_s <= 3600.0:
            raise ValueError("stable_window_s must be within [6, 3600] s")
        self.target_concurrency = float(target_concurrency)
        self.stable_window_s = float(stable_window_s)

    def params(self) -> dict[str, float]:
        return {"target_concurrency": self.target_concurrency, "stable_window_s": self.stable_window_s}

    @staticmethod
    def default_sweep(config: PolicyConfig | None = None) -> list[dict[str, float]]:
        """Concurrency targets from 1 per pod to all of a replica's batch slots, ≤ ×1.25 apart."""
        slots = float(max(1, (config or PolicyConfig()).max_concurrency))
        return [{"target_concurrency": t} for t in geometric_grid(1.0, max(slots, 2.0))]

    def decide(
        self,
        config: PolicyConfig,
        observation: Observation,
        pools: Mapping[str, PoolState],
        memory: Memory,
        now_s: float,
    ) -> Decision:
        pool_bounds = [(INTERACTIVE, observation.interactive, config.warm_floor, config.max_replicas)]
        if config.batch.enabled:
            pool_bounds.append((BATCH, observation.batch, 0, config.batch.max_replicas))
        step = partial(kpa_step, stable_window_s=self.stable_window_s)
        return decide_each_pool(
            step, self.target_concurrency, "kpa: no metrics, keeping replicas",
            pool_bounds, observation, pools, memory, now_s,
        )
