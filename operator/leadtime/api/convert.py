"""From Kubernetes objects to validated models, and from the spec to the policy's plain-unit config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..policy.types import BatchConfig, FloorWindow, PolicyConfig
from .models import ModelDeployment, ModelDeploymentSpec, hh_mm_to_minute
from .rules import field_path_parts


class InvalidModelDeployment(ValueError):
    """A ModelDeployment that does not validate; `errors` holds (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))


def _format_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def _errors(err: ValidationError, prefix: tuple[Any, ...]) -> list[tuple[str, str]]:
    errors = []
    for error in err.errors(include_url=False):
        loc = prefix + tuple(error["loc"])
        if error["type"] == "cel":
            # Report a cross-field rule where the apiserver does: at its fieldPath.
            loc = loc + field_path_parts(error["ctx"]["field_path"])
        errors.append((_format_path(loc), error["msg"].removeprefix("Value error, ")))
    return errors


def parse_model_deployment(obj: Mapping[str, Any]) -> ModelDeployment:
    """Validate a whole ModelDeployment object (as the API returns it); raise InvalidModelDeployment."""
    try:
        return ModelDeployment.model_validate(obj)
    except ValidationError as err:
        raise InvalidModelDeployment(_errors(err, ())) from None


def parse_spec(spec: Mapping[str, Any]) -> ModelDeploymentSpec:
    """Validate a `.spec`; errors carry paths starting with `spec.`."""
    try:
        return ModelDeploymentSpec.model_validate(spec)
    except ValidationError as err:
        raise InvalidModelDeployment(_errors(err, ("spec",))) from None


def to_policy_config(spec: ModelDeploymentSpec | Mapping[str, Any]) -> PolicyConfig:
    """The policy's view of a spec, in plain units."""
    if not isinstance(spec, ModelDeploymentSpec):
        spec = parse_spec(spec)
    batch = spec.pools.batch
    fallback = batch.on_demand_fallback
    return PolicyConfig(
        slo_p95_s=spec.slo.p95_seconds,
        slo_metric=spec.slo.latency,
        warm_floor=spec.replicas.warm_floor,
        max_replicas=spec.replicas.max,
        floors=tuple(
            FloorWindow(
                start_minute=hh_mm_to_minute(window.start),
                end_minute=hh_mm_to_minute(window.end),
                replicas=window.min_replicas,
            )
            for window in spec.replicas.schedule
        ),
        gpus_per_replica=spec.model.gpus,
        price_per_gpu_hour=spec.pools.interactive.price_per_gpu_hour,
        max_concurrency=spec.capacity.max_concurrency,
        replica_capacity_rps=spec.capacity.requests_per_second_per_replica,
        cold_start_prior_s=spec.capacity.cold_start_seconds,
        forecast_enabled=spec.forecast.enabled,
        scale_down_stabilization_s=float(spec.scale_down.stabilization_seconds),
        scale_down_cost_aware=spec.scale_down.cost_aware,
        control_interval_s=float(spec.control_interval_seconds),
        batch=BatchConfig(
            enabled=batch.enabled,
            max_replicas=batch.max_replicas,
            deadline_s=batch.deadline_seconds,
            price_per_gpu_hour=batch.price_per_gpu_hour,
            fallback_enabled=fallback.enabled,
            fallback_after_pending_s=fallback.after_pending_seconds,
            fallback_max_replicas=fallback.max_replicas,
        ),
    )
