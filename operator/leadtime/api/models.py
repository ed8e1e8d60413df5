"""The ModelDeployment API (serving.leadtime.dev/v1alpha1): spec and status as pydantic models.

The CRD in crds/ is generated from these classes (`leadtime crds`): class and attribute docstrings
become the schema's descriptions, Field constraints become its validations, and each class's
`cel_rules` become `x-kubernetes-validations`.
"""

from __future__ import annotations

import re
import string
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from .rules import ApiModel, Rule

GROUP = "serving.leadtime.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"

# The label the local cluster puts on its nodes; users on other clusters set their own selectors.
CAPACITY_TYPE_LABEL = "leadtime.dev/capacity-type"

HH_MM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# Prometheus durations as accepted by PromQL range selectors: "30s", "1m", "1h30m".
PROMETHEUS_DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
# The pattern Kubernetes uses for resource.Quantity in CRDs.
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
PROMETHEUS_URL_PATTERN = r"^(https?://[^\s]+)?$"

# Placeholders a query template may use (string.Template syntax).
QUERY_PLACEHOLDERS = frozenset({"namespace", "name", "pools", "window"})

# Default PromQL for vLLM's metric names. The replicas' metrics carry the labels `namespace`,
# `model_deployment` and `pool` (the operator puts them on the pods; the scrape config keeps them).
# ${pools} is a regex alternation of pool names, e.g. "interactive" or "batch|batch-ondemand".
_SELECTOR = 'namespace="${namespace}",model_deployment="${name}",pool=~"${pools}"'
# vLLM exports no arrival counter; completions per second is the arrival rate in steady state, and the
# queue depth (read alongside) shows the transient excess.
DEFAULT_ARRIVAL_RATE_QUERY = f"sum(rate(vllm:request_success_total{{{_SELECTOR}}}[${{window}}]))"
DEFAULT_QUEUE_DEPTH_QUERY = f"sum(vllm:num_requests_waiting{{{_SELECTOR}}})"
DEFAULT_RUNNING_QUERY = f"sum(vllm:num_requests_running{{{_SELECTOR}}})"
DEFAULT_TTFT_P95_QUERY = f"histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{_SELECTOR}}}[${{window}}])))"
DEFAULT_E2E_P95_QUERY = f"histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{{_SELECTOR}}}[${{window}}])))"


def _quantity_to_str(value: Any) -> Any:
    # Kubernetes accepts `cpu: 4` as well as `cpu: "4"`; keep one type in Python.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and not re.match(QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 4, 16Gi)")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


def hh_mm_to_minute(value: str) -> int:
    """Minutes after midnight for "HH:MM"."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


# ---------------------------------------------------------------------------------------------- spec


class EnvVar(ApiModel):
    """An environment variable of the model server container."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)
    """Variable name."""
    value: str = ""
    """Variable value."""


class ResourceRequirements(ApiModel):
    """CPU and memory for the model server container; GPUs are set with model.gpus."""

    requests: dict[str, Quantity] = Field(default={}, max_length=16)
    """Resource requests, e.g. {cpu: "8", memory: 64Gi}."""
    limits: dict[str, Quantity] = Field(default={}, max_length=16)
    """Resource limits, e.g. {memory: 64Gi}."""

    cel_rules = (
        Rule(
            cel="!('nvidia.com/gpu' in self.requests) && !('nvidia.com/gpu' in self.limits)",
            message="model.resources must not set nvidia.com/gpu: set model.gpus instead",
            field_path=".limits",
            holds=lambda r: "nvidia.com/gpu" not in r.requests and "nvidia.com/gpu" not in r.limits,
        ),
    )


class ModelSpec(ApiModel):
    """The replica pod: the model server container and what each replica gets."""

    image: str = Field(min_length=1, max_length=512)
    """Container image of the model server, e.g. vllm/vllm-openai:v0.11.0."""
    args: list[str] = Field(default=[], max_length=128)
    """Arguments passed to the container."""
    env: list[EnvVar] = Field(default=[], max_length=128)
    """Environment variables of the container."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port the server listens on; serves the API and /metrics."""
    gpus: int = Field(default=1, ge=1, le=8)
    """GPUs (nvidia.com/gpu) per replica."""
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    """CPU and memory requests and limits (Kubernetes quantities)."""
    pod_annotations: dict[str, str] = Field(default={}, max_length=64)
    """Annotations put on each replica pod (e.g. leadtime.dev/cold-start: "45s" for the local cluster)."""


class SloSpec(ApiModel):
    """The latency objective the replicas are sized for."""

    latency: Literal["ttft", "e2e"] = "ttft"
    """Which latency the objective is about: ttft (time to first token) or e2e (whole request)."""
    p95_seconds: float = Field(default=2.0, gt=0, le=3600)
    """Target p95 of that latency, in seconds."""


class ScheduleWindow(ApiModel):
    """A time-of-day floor: at least minReplicas interactive replicas between start and end (UTC)."""

    start: str = Field(pattern=HH_MM_PATTERN, max_length=5)
    """Start of the window, HH:MM UTC, inclusive."""
    end: str = Field(pattern=HH_MM_PATTERN, max_length=5)
    """End of the window, HH:MM UTC, exclusive; a window may wrap past midnight (end before start)."""
    min_replicas: int = Field(ge=0)
    """Interactive replicas kept during the window."""

    cel_rules = (
        Rule(
            cel="self.start != self.end",
            message="replicas.schedule[].end must differ from replicas.schedule[].start",
            field_path=".end",
            holds=lambda w: w.start != w.end,
        ),
    )


class ReplicasSpec(ApiModel):
    """Bounds on the interactive pool's replicas."""

    warm_floor: int = Field(default=1, ge=0)
    """Replicas kept warm at all times, whatever the demand (0 allows scale to zero)."""
    max: int = Field(default=20, ge=1, le=1000)
    """Upper bound on interactive replicas."""
    schedule: list[ScheduleWindow] = Field(default=[], max_length=24)
    """Time-of-day floors that raise the warm floor during known busy hours."""

    cel_rules = (
        Rule(
            cel="self.warmFloor <= self.max",
            message="replicas.warmFloor must be less than or equal to replicas.max",
            field_path=".warmFloor",
            holds=lambda r: r.warm_floor <= r.max,
        ),
        Rule(
            cel="self.schedule.all(w, w.minReplicas <= self.max)",
            message="replicas.schedule[].minReplicas must be less than or equal to replicas.max",
            field_path=".schedule",
            holds=lambda r: all(w.min_replicas <= r.max for w in r.schedule),
        ),
    )


class CapacitySpec(ApiModel):
    """Priors about one replica, used until leadtime has learned from its own replicas."""

    max_concurrency: int = Field(default=32, ge=1, le=4096)
    """Sequences one replica serves at once (its KV-cache limit)."""
    requests_per_second_per_replica: float = Field(default=2.0, gt=0)
    """Requests per second one replica sustains within the SLO."""
    cold_start_seconds: float = Field(default=60.0, gt=0, le=7200)
    """Time from pod creation to Ready, before any has been observed."""


class ForecastSpec(ApiModel):
    """Demand forecasting one lead time ahead."""

    enabled: bool = True
    """Size for the forecast demand one lead time ahead; when false, size for the current demand."""


class ScaleDownSpec(ApiModel):
    """How cautiously replicas are removed."""

    stabilization_seconds: int = Field(default=300, ge=0, le=86400)
    """Scale down only to the highest recommendation of this many past seconds (the longest wait;
    see costAware)."""
    cost_aware: bool = True
    """Remove a replica only when its idle GPU costs more than the cold start it would save; while
    the SLO has held and no removed replica was asked back for an hour, wait only twice the learned
    lead time (at least 60 s) instead of the full stabilisation window."""


# A pod's terminationGracePeriodSeconds is capped where a stuck replica would hold its GPU for more
# than an hour; the preStop sleep must end within it (Kubernetes rejects a longer sleep action).
MAX_TERMINATION_GRACE_PERIOD_S = 3600


class DrainSpec(ApiModel):
    """How a replica leaves on scale-down: it stops getting new requests and finishes its running ones."""

    termination_grace_period_seconds: int = Field(default=600, ge=0, le=MAX_TERMINATION_GRACE_PERIOD_S)
    """The pods' terminationGracePeriodSeconds: the longest a removed replica may take to finish its
    in-flight requests (the preStop sleep included) before it is killed."""
    pre_stop_sleep_seconds: int = Field(default=10, ge=0, le=MAX_TERMINATION_GRACE_PERIOD_S)
    """Seconds the model container's preStop hook sleeps before the server gets SIGTERM, so the Service
    stops sending it requests first; 0 sets no preStop hook."""

    cel_rules = (
        Rule(
            cel="self.preStopSleepSeconds <= self.terminationGracePeriodSeconds",
            message="drain.preStopSleepSeconds must be less than or equal to drain.terminationGracePeriodSeconds",
            field_path=".preStopSleepSeconds",
            holds=lambda d: d.pre_stop_sleep_seconds <= d.termination_grace_period_seconds,
        ),
    )


class Toleration(ApiModel):
    """A Kubernetes toleration copied onto a pool's pods."""

    key: str = Field(default="", max_length=317)
    """Taint key; empty with operator Exists matches every taint."""
    operator: Literal["Equal", "Exists"] = "Equal"
    """Equal matches key and value; Exists matches the key alone."""
    value: str = Field(default="", max_length=63)
    """Taint value, for operator Equal."""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    """Taint effect to tolerate; empty tolerates all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For NoExecute: how long the pod stays bound after the taint appears."""


class InteractivePoolSpec(ApiModel):
    """The interactive pool: latency-sensitive requests on on-demand nodes."""

    node_selector: dict[str, str] = Field(
        default={CAPACITY_TYPE_LABEL: "on-demand"}, min_length=1, max_length=16
    )
    """Labels of the on-demand GPU nodes the pool's pods run on; must not be empty."""
    tolerations: list[Toleration] = Field(default=[], max_length=32)
    """Tolerations of the pool's pods."""
    price_per_gpu_hour: float = Field(default=3.43, ge=0)
    """On-demand price of one GPU-hour, in dollars; used for cost-aware scale-down and the cost ledger."""


class OnDemandFallbackSpec(ApiModel):
    """Moving batch work to on-demand nodes when spot capacity is missing and a deadline is at risk."""

    enabled: bool = True
    """Allow batch replicas on on-demand nodes (the batch-ondemand pool)."""
    after_pending_seconds: float = Field(default=120.0, ge=0)
    """Spot pods Pending this long count as spot capacity missing."""
    max_replicas: int = Field(default=2, ge=0)
    """At most this many batch replicas on on-demand nodes."""


_SPOT_TOLERATION = {"key": CAPACITY_TYPE_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}


class BatchPoolSpec(ApiModel):
    """The batch pool: latency-tolerant requests on spot nodes, sized against their backlog and deadline."""

    enabled: bool = False
    """Run a batch pool for requests of class batch."""
    node_selector: dict[str, str] = Field(default={CAPACITY_TYPE_LABEL: "spot"}, max_length=16)
    """Labels of the spot GPU nodes; must not be empty when the pool is enabled."""
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration.model_validate(_SPOT_TOLERATION)],
        max_length=32,
        json_schema_extra={"default": [_SPOT_TOLERATION]},
    )
    """Tolerations of the pool's pods; by default the spot nodes' taint."""
    price_per_gpu_hour: float = Field(default=1.5, ge=0)
    """Spot price of one GPU-hour, in dollars."""
    max_replicas: int = Field(default=10, ge=1, le=1000)
    """Upper bound on batch replicas on spot nodes."""
    deadline_seconds: float = Field(default=3600.0, gt=0)
    """A batch request should complete within this long of arriving."""
    on_demand_fallback: OnDemandFallbackSpec = Field(default_factory=OnDemandFallbackSpec)
    """Fallback onto on-demand nodes."""

    cel_rules = (
        Rule(
            cel="!self.enabled || size(self.nodeSelector) > 0",
            message="pools.batch.nodeSelector must not be empty when pools.batch.enabled is true",
            field_path=".nodeSelector",
            holds=lambda b: not b.enabled or len(b.node_selector) > 0,
        ),
        Rule(
            cel="self.onDemandFallback.maxReplicas <= self.maxReplicas",
            message="pools.batch.onDemandFallback.maxReplicas must be less than or equal to pools.batch.maxReplicas",
            field_path=".onDemandFallback.maxReplicas",
            holds=lambda b: b.on_demand_fallback.max_replicas <= b.max_replicas,
        ),
    )


class PoolsSpec(ApiModel):
    """Where replicas run and what their GPUs cost."""

    interactive: InteractivePoolSpec = Field(default_factory=InteractivePoolSpec)
    """The interactive pool (on-demand nodes)."""
    batch: BatchPoolSpec = Field(default_factory=BatchPoolSpec)
    """The batch pool (spot nodes), off by default."""


class QueriesSpec(ApiModel):
    """PromQL templates with placeholders ${namespace}, ${name}, ${pools} and ${window}."""

    arrival_rate: str = Field(default=DEFAULT_ARRIVAL_RATE_QUERY, min_length=1)
    """Requests per second arriving at the pools."""
    queue_depth: str = Field(default=DEFAULT_QUEUE_DEPTH_QUERY, min_length=1)
    """Requests waiting, summed over the pools' pods."""
    running: str = Field(default=DEFAULT_RUNNING_QUERY, min_length=1)
    """Requests being served, summed over the pools' pods."""
    ttft_p95: str = Field(default=DEFAULT_TTFT_P95_QUERY, min_length=1)
    """p95 time to first token over the window, in seconds."""
    e2e_p95: str = Field(default=DEFAULT_E2E_P95_QUERY, min_length=1)
    """p95 end-to-end request latency over the window, in seconds."""

    @field_validator("*")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        parsed = string.Template(template)
        if not parsed.is_valid():
            raise ValueError("invalid placeholder syntax; use ${namespace}, ${name}, ${pools} or ${window}")
        unknown = set(parsed.get_identifiers()) - QUERY_PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; known: {sorted(QUERY_PLACEHOLDERS)}")
        return template


class MetricsSpec(ApiModel):
    """Where and how the demand and latency of the replicas are read."""

    prometheus_url: str = Field(default="", pattern=PROMETHEUS_URL_PATTERN, max_length=2048)
    """Prometheus base URL; empty uses the operator's --prometheus-url."""
    window: str = Field(default="1m", pattern=PROMETHEUS_DURATION_PATTERN, max_length=32)
    """Range of rate() and quantile windows, a Prometheus duration such as 30s or 1m."""
    queries: QueriesSpec = Field(default_factory=QueriesSpec)
    """PromQL templates; the defaults read vLLM's metrics."""


class ModelDeploymentSpec(ApiModel):
    """The desired state: what to serve, the latency objective, and the bounds leadtime scales within."""

    mode: Literal["active", "shadow"] = "active"
    """active scales the Deployments; shadow only records what it would do in status."""
    control_interval_seconds: int = Field(default=5, ge=1, le=300)
    """Seconds between two scaling decisions."""
    model: ModelSpec
    """The replica pod."""
    slo: SloSpec = Field(default_factory=SloSpec)
    """The latency objective."""
    replicas: ReplicasSpec = Field(default_factory=ReplicasSpec)
    """Warm floor, maximum and time-of-day floors of the interactive pool."""
    capacity: CapacitySpec = Field(default_factory=CapacitySpec)
    """Priors about one replica, until learned."""
    forecast: ForecastSpec = Field(default_factory=ForecastSpec)
    """Demand forecasting."""
    scale_down: ScaleDownSpec = Field(default_factory=ScaleDownSpec)
    """Scale-down behaviour."""
    drain: DrainSpec = Field(default_factory=DrainSpec)
    """How removed replicas finish their in-flight requests."""
    pools: PoolsSpec = Field(default_factory=PoolsSpec)
    """The interactive and batch pools."""
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    """Prometheus queries."""


# -------------------------------------------------------------------------------------------- status


class PoolStatus(ApiModel):
    """Replicas of one pool as last observed."""

    ready: int = Field(default=0, ge=0)
    """Pods that are Ready."""
    starting: int = Field(default=0, ge=0)
    """Pods scheduled but not Ready yet."""
    pending: int = Field(default=0, ge=0)
    """Pods no node has room for."""
    desired: int = Field(default=0, ge=0)
    """Replicas leadtime last asked for."""


class ObservationStatus(ApiModel):
    """What Prometheus reported at the last decision."""

    at: datetime | None = None
    """When the metrics were read."""
    arrival_rate_rps: float | None = None
    """Interactive requests per second."""
    queue_depth: float | None = None
    """Interactive requests waiting."""
    running: float | None = None
    """Interactive requests being served."""
    p95_latency_seconds: float | None = None
    """p95 of the SLO latency over the window, in seconds."""
    batch_arrival_rate_rps: float | None = None
    """Batch requests per second."""
    batch_queue_depth: float | None = None
    """Batch requests waiting."""


class DecisionStatus(ApiModel):
    """The last scaling decision and why it was made."""

    at: datetime | None = None
    """When the decision was made."""
    reason: str = ""
    """Why, in words (the interactive pool's reason first)."""
    replicas: dict[str, int] = Field(default={})
    """Desired replicas per pool."""
    forecast_rps: float | None = None
    """The interactive demand sized for, in requests per second."""
    lead_time_seconds: float | None = None
    """The horizon the forecast looked ahead, in seconds."""
    held: bool = False
    """True when metrics were unavailable and replicas were held."""


class CostStatus(ApiModel):
    """The running cost ledger of all pools since the ModelDeployment was created."""

    dollars_per_hour: float | None = None
    """Current spend rate of the GPUs in use, in dollars per hour."""
    gpu_hours: float | None = None
    """GPU-hours billed so far (from pod creation to deletion)."""
    cost_per_1k_requests: float | None = None
    """Dollars per thousand requests served."""
    idle_gpu_share: float | None = None
    """Share of billed GPU time that served no request."""
    requests_served: float | None = None
    """Requests served so far."""


class Condition(ApiModel):
    """A Kubernetes-style condition; see leadtime.api.conditions for types and reasons."""

    type: str = Field(min_length=1, max_length=316)
    """Ready, MetricsAvailable, Scaling or Degraded."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str = Field(default="", max_length=1024)
    """CamelCase reason for the last transition."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details."""
    last_transition_time: datetime | None = None
    """When status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the condition was set for."""


class ModelDeploymentStatus(ApiModel):
    """The observed state, written by the operator; also its memory across restarts."""

    observed_generation: int | None = None
    """The .metadata.generation last acted on."""
    ready_replicas: int | None = None
    """Ready interactive replicas."""
    desired_replicas: int | None = None
    """Desired interactive replicas."""
    pools: dict[str, PoolStatus] = Field(default={})
    """Per pool (interactive, batch, batch-ondemand): ready, starting, pending, desired."""
    observation: ObservationStatus | None = None
    """The metrics of the last decision."""
    last_decision: DecisionStatus | None = None
    """The last scaling decision."""
    learned_cold_start_p90_seconds: float | None = None
    """P90 of the observed pod start-to-Ready durations: the lead time."""
    cost: CostStatus | None = None
    """Cost ledger."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready, MetricsAvailable, Scaling and Degraded."""
    memory: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """The scaling policy's state (forecaster, stabilisation history); opaque."""


class ModelDeployment(ApiModel):
    """A model served by GPU replicas that leadtime scales ahead of demand."""

    api_version: Literal["serving.leadtime.dev/v1alpha1"] = API_VERSION
    kind: Literal["ModelDeployment"] = KIND
    metadata: dict[str, Any] = Field(default={})
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None
