"""Render a ModelDeployment's PromQL templates into the concrete queries for each request class (pure)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from leadtime.policy.types import BATCH, BATCH_ONDEMAND, INTERACTIVE, SloMetric

# Which pools' pods serve each request class; `${pools}` becomes a regex alternation over these, so a
# template filters with `pool=~"${pools}"`.
CLASS_POOLS: Mapping[str, tuple[str, ...]] = {
    "interactive": (INTERACTIVE,),
    "batch": (BATCH, BATCH_ONDEMAND),
}

# The template keys a spec carries (metrics.queries) and which latency template each SLO kind reads.
QUERY_KEYS = ("arrivalRate", "queueDepth", "running", "ttftP95", "e2eP95")
LATENCY_KEY: Mapping[str, str] = {"ttft": "ttftP95", "e2e": "e2eP95"}

# Age of the newest queue-depth sample of this ModelDeployment's pods. timestamp() on a bare selector
# returns the sample's own timestamp, not the evaluation time. It must select a single metric name:
# timestamp() drops names, and series of two metrics with equal labels would collide (HTTP 422). With
# other metric names than vLLM's this returns nothing and Prometheus's own staleness handling (series
# vanish when their target stops answering) is what turns stale data into NoData.
FRESHNESS_TEMPLATE = (
    'time() - max(timestamp(vllm:num_requests_waiting{namespace="${namespace}", model_deployment="${name}"}))'
)


class TemplateError(ValueError):
    """A template names a placeholder leadtime does not provide, or is malformed."""


@dataclass(frozen=True)
class ClassQueries:
    """The four queries that describe one request class; latency is the SLO's p95 (ttft or e2e)."""

    arrival_rate: str
    queue_depth: str
    running: str
    p95_latency: str


@dataclass(frozen=True)
class Queries:
    interactive: ClassQueries
    batch: ClassQueries
    freshness: str


def render(template: str, *, namespace: str, name: str, pools: tuple[str, ...], window: str) -> str:
    """Substitute ${namespace} ${name} ${pools} ${window}; unknown placeholders are a TemplateError."""
    try:
        return string.Template(template).substitute(
            namespace=namespace, name=name, pools="|".join(pools), window=window
        )
    except (KeyError, ValueError) as err:
        raise TemplateError(f"template {template!r}: bad placeholder {err}") from err


def render_queries(
    templates: Mapping[str, str], *, namespace: str, name: str, window: str, slo_metric: SloMetric
) -> Queries:
    """Queries for both classes from the spec's templates (metrics.queries)."""
    missing = [key for key in ("arrivalRate", "queueDepth", "running", LATENCY_KEY[slo_metric]) if not templates.get(key)]
    if missing:
        raise TemplateError(f"metrics.queries is missing {', '.join(missing)}")

    def for_class(request_class: str) -> ClassQueries:
        def one(key: str) -> str:
            return render(templates[key], namespace=namespace, name=name, pools=CLASS_POOLS[request_class], window=window)

        return ClassQueries(
            arrival_rate=one("arrivalRate"),
            queue_depth=one("queueDepth"),
            running=one("running"),
            p95_latency=one(LATENCY_KEY[slo_metric]),
        )

    freshness = render(FRESHNESS_TEMPLATE, namespace=namespace, name=name, pools=(), window=window)
    return Queries(interactive=for_class("interactive"), batch=for_class("batch"), freshness=freshness)
