"""kopf handlers for ModelDeployment. Registered on import: `kopf run -m leadtime.handlers` works.

All handlers are sync: kopf runs them in its thread pool, and the kubernetes client and
prometheus-api-client they call are blocking. Nothing here is async, so nothing blocks the event loop.

Control interval. kopf's timer interval is fixed when the handler is registered, but each
ModelDeployment has its own `spec.controlIntervalSeconds`. So one timer ticks every TICK_S (1 s) for
every ModelDeployment and the tick returns at once unless that ModelDeployment's interval has passed
since its last decision. A restarted operator decides on its first tick, then resumes the cadence.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import config as kube_config

from leadtime.api.convert import InvalidModelDeployment, parse_spec
from leadtime.handlers import drain, telemetry
from leadtime.handlers.reconcile import run_tick, spec_dict
from leadtime.k8s.builders import GROUP, PLURAL, VERSION, pools_of
from leadtime.k8s.cluster import Cluster
from leadtime.metrics.prometheus import PrometheusSource

log = logging.getLogger("leadtime.operator")

# The static kopf timer period. 1 s keeps the effective interval within a second of the spec's
# (minimum 1 s) at the price of a cheap no-op call per second per ModelDeployment.
TICK_S = float(os.environ.get("LEADTIME_TICK_SECONDS", "1.0"))
# Children are re-ensured on every spec change and at least this often, so a Deployment deleted by hand
# comes back without waiting for the next edit.
CHILDREN_RESYNC_S = 60.0
# A tick may start up to this early: kopf's timer drifts by a few ms, and without slack a 5 s interval
# would often become 6 s.
DUE_SLACK_S = 0.2


@dataclass
class OperatorConfig:
    prometheus_url: str = ""

    @classmethod
    def from_env(cls) -> OperatorConfig:
        return cls(prometheus_url=os.environ.get("LEADTIME_PROMETHEUS_URL", ""))


_cluster: Cluster | None = None
_sources: dict[str, PrometheusSource] = {}


def cluster() -> Cluster:
    global _cluster
    if _cluster is None:
        _cluster = Cluster()
    return _cluster


def metrics_source(url: str) -> PrometheusSource:
    if url not in _sources:
        _sources[url] = PrometheusSource(url)
    return _sources[url]


def post_event(md: Any, type_: str, reason: str, message: str) -> None:
    kopf.event(md, type=type_, reason=reason, message=message[:1024])


def _operator_config(memo: Any) -> OperatorConfig:
    configured = getattr(memo, "leadtime", None)
    return configured if isinstance(configured, OperatorConfig) else OperatorConfig.from_env()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and diff-base in annotations under our own prefix: `.status` is ours and schema-checked.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="leadtime.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="leadtime.dev")
    # kopf puts a finalizer on every resource that has a timer, so it can stop the timer on deletion.
    # Name it after us: it is what users see when a ModelDeployment waits for a stopped operator.
    settings.persistence.finalizer = "serving.leadtime.dev/operator"
    # kopf would post an Event for every successful handler run (one per tick); users want scale Events.
    settings.posting.level = logging.WARNING
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()


def _as_dict(body: kopf.Body) -> dict[str, Any]:
    """A plain copy of the object (kopf's Body is a live view) with what Events need to refer to it."""
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": dict(body["metadata"]),
            "spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {})}


def _ensure(body: kopf.Body, logger: logging.Logger) -> None:
    try:
        spec = parse_spec(body.get("spec") or {})
    except InvalidModelDeployment as err:
        # The timer reports it as Degraded=True InvalidSpec; creating children from it would be wrong.
        logger.warning(f"not creating children: invalid spec: {err}")
        return
    md = {"metadata": dict(body["metadata"]), "spec": spec_dict(spec)}
    changes = cluster().ensure_children(md)
    for change in changes:
        logger.info(change)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def ensure_children(body: kopf.Body, logger: logging.Logger, memo: kopf.Memo, **_: Any) -> None:
    """Children exist and match the spec; their replicas are left to the control loop."""
    _ensure(body, logger)
    memo["children_ensured_s"] = time.monotonic()
    memo["children_generation"] = body["metadata"].get("generation")


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_S)
def control_tick(body: kopf.Body, logger: logging.Logger, memo: kopf.Memo, **_: Any) -> None:
    """Every spec.controlIntervalSeconds: read metrics and pods, decide, apply, write status."""
    now_monotonic = time.monotonic()
    interval_s = float((body.get("spec") or {}).get("controlIntervalSeconds") or 5)
    if now_monotonic - memo.get("last_tick_s", -1e18) < interval_s - DUE_SLACK_S:
        return
    memo["last_tick_s"] = now_monotonic
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    started = time.perf_counter()
    try:
        if (memo.get("children_generation") != body["metadata"].get("generation")
                or now_monotonic - memo.get("children_ensured_s", -1e18) > CHILDREN_RESYNC_S):
            _ensure(body, logger)
            memo["children_ensured_s"] = now_monotonic
            memo["children_generation"] = body["metadata"].get("generation")
        md = _as_dict(body)
        result = run_tick(
            md, cluster=cluster(), metrics_source=metrics_source, decide=_decide(), post_event=post_event,
            now_s=time.time(), default_prometheus_url=_operator_config(memo).prometheus_url,
            before_scale_down=lambda md, pool, url: drain.order_scale_down(md, pool, url, cluster=cluster()),
        )
    except Exception as err:  # a tick must never take the timer down; the next tick retries
        telemetry.ERRORS.labels(namespace, name, type(err).__name__).inc()
        logger.exception(f"control tick failed: {err}")
        return
    finally:
        telemetry.RECONCILE_DURATION.labels(namespace, name).observe(time.perf_counter() - started)
    if result.spec_problem:
        telemetry.ERRORS.labels(namespace, name, "InvalidSpec").inc()
    if result.reading is not None:
        telemetry.METRICS_AVAILABLE.labels(namespace, name).set(1 if result.reading.observation.available else 0)
    if result.decision is not None:
        telemetry.DECISIONS.labels(namespace, name, str(result.decision.held).lower()).inc()
        for pool, pool_decision in result.decision.pools.items():
            telemetry.DESIRED_REPLICAS.labels(namespace, name, pool).set(pool_decision.replicas)
    for pool, (before, after) in result.scaled.items():
        telemetry.SCALES.labels(namespace, name, pool, "up" if after > before else "down").inc()


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def forget(body: kopf.Body, **_: Any) -> None:
    """Children go with their owner (ownerReferences + the garbage collector); only our gauges remain."""
    md = {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec") or {})}
    telemetry.forget(body["metadata"]["namespace"], body["metadata"]["name"], pools_of(md) + ("batch", "batch-ondemand"))


def _decide():
    # Imported on first use so the handlers module loads even where only the CLI is needed.
    from leadtime.policy import decide

    return decide
