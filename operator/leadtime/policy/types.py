"""The types every scaling policy speaks: what it sees, what it is configured with, what it decides.

The simulator, the in-cluster emulator and the operator build these from their own sources (replica
model, Prometheus, the Kubernetes API) and call the same `decide()`. Nothing here does I/O or reads a
clock: time is always passed in as `now_s` (seconds; epoch seconds in the operator, trace seconds plus
an epoch offset in the simulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# Pool names. Interactive runs on on-demand nodes; batch on spot nodes; batch-ondemand is the batch
# pool's fallback onto on-demand nodes when spot capacity is missing and a deadline is at risk.
INTERACTIVE = "interactive"
BATCH = "batch"
BATCH_ONDEMAND = "batch-ondemand"
POOLS = (INTERACTIVE, BATCH, BATCH_ONDEMAND)

# Request classes. Interactive requests are served by the interactive pool; batch requests by the batch
# pool and, while it is engaged, by the batch-ondemand pool.
RequestClass = Literal["interactive", "batch"]
SloMetric = Literal["ttft", "e2e"]

# A policy's memory is plain JSON so the operator can keep it in `.status` and survive restarts.
Memory = dict[str, Any]


@dataclass(frozen=True)
class ClassObservation:
    """What Prometheus reports about one request class over the last window; None means unknown."""

    arrival_rate_rps: float | None = None
    queue_depth: float | None = None  # requests waiting, summed over the class's pods
    running: float | None = None  # requests being served (in the batch), summed over the pods
    p95_latency_s: float | None = None  # p95 of the SLO latency (ttft or e2e) over the window


@dataclass(frozen=True)
class Observation:
    """Metrics as of `at_s`. `available=False` means Prometheus could not be read or returned nothing."""

    at_s: float
    interactive: ClassObservation = field(default_factory=ClassObservation)
    batch: ClassObservation = field(default_factory=ClassObservation)
    available: bool = True
    stale_s: float = 0.0  # age of the newest sample; the policy treats very stale data as unavailable


@dataclass(frozen=True)
class ReadyPod:
    """A pod that is Ready: when it became Ready and how long it took from creation (its cold start)."""

    ready_at_s: float
    cold_start_s: float


@dataclass(frozen=True)
class PoolState:
    """What the Kubernetes API reports about one pool's pods."""

    desired: int = 0  # the Deployment's current spec.replicas
    ready: tuple[ReadyPod, ...] = ()
    starting_ages_s: tuple[float, ...] = ()  # scheduled but not Ready yet: age since creation
    pending_ages_s: tuple[float, ...] = ()  # unschedulable (no node has room): age since creation

    @property
    def ready_count(self) -> int:
        return len(self.ready)

    @property
    def starting_count(self) -> int:
        return len(self.starting_ages_s)


@dataclass(frozen=True)
class FloorWindow:
    """A time-of-day floor: at least `replicas` interactive replicas between start and end (UTC)."""

    start_minute: int  # minutes after midnight UTC, inclusive
    end_minute: int  # exclusive; a window may wrap past midnight (end < start)
    replicas: int


@dataclass(frozen=True)
class BatchConfig:
    """The batch pool: latency-tolerant work on spot nodes, with an on-demand fallback."""

    enabled: bool = False
    max_replicas: int = 10
    deadline_s: float = 3600.0  # a batch request should complete within this long of arriving
    price_per_gpu_hour: float = 1.5  # spot price
    fallback_enabled: bool = True
    fallback_after_pending_s: float = 120.0  # spot pods Pending this long count as "spot missing"
    fallback_max_replicas: int = 2  # budget: at most this many batch replicas on on-demand nodes


@dataclass(frozen=True)
class PolicyConfig:
    """Everything a policy needs from the ModelDeployment spec, in plain units."""

    slo_p95_s: float = 2.0
    slo_metric: SloMetric = "ttft"
    warm_floor: int = 1
    max_replicas: int = 20
    floors: tuple[FloorWindow, ...] = ()
    gpus_per_replica: int = 1
    price_per_gpu_hour: float = 3.43  # on-demand A100-80G; the interactive pool and batch fallback
    # Priors: used until the policy has learned from its own replicas.
    max_concurrency: int = 32  # sequences one replica serves at once (KV-cache limit)
    replica_capacity_rps: float = 2.0  # requests/s one replica sustains within the SLO
    cold_start_prior_s: float = 60.0
    forecast_enabled: bool = True
    scale_down_stabilization_s: float = 300.0
    scale_down_cost_aware: bool = True
    control_interval_s: float = 5.0
    batch: BatchConfig = field(default_factory=BatchConfig)


@dataclass(frozen=True)
class PoolDecision:
    replicas: int
    reason: str  # what users read in `kubectl describe`, e.g. "forecast 38.2 rps in 120 s needs 7 ..."


@dataclass(frozen=True)
class Decision:
    """Desired replicas per pool, with reasons, plus the policy's new memory and a few explanations."""

    pools: Mapping[str, PoolDecision]
    memory: Memory
    lead_time_s: float | None = None  # the horizon the policy forecast over
    forecast_rps: float | None = None  # the interactive demand it sized for
    held: bool = False  # True when metrics were unavailable and replicas were held


class Policy(Protocol):
    """A scaling policy: leadtime's own, or a baseline re-implemented for comparison."""

    name: str
    interval_s: float  # how often it runs (HPA syncs every 15 s, Knative ticks every 2 s, ...)

    def decide(
        self,
        config: PolicyConfig,
        observation: Observation,
        pools: Mapping[str, PoolState],
        memory: Memory,
        now_s: float,
    ) -> Decision: ...
