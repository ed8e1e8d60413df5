"""The emulator core: trace cursor, routing by class, the shared replica model, metric snapshots. Pure.

Time here is *trace time* in seconds since the start of the replayed window, always passed in. The shell
(runner.py) maps the wall clock onto it. Durations leave the core divided by `time_scale`, so everything
the operator reads is on one clock, the wall clock (docs/demo.md, "Units").

Routing mirrors the Services: interactive requests go to the interactive pool's Ready pods; batch
requests to the batch and batch-ondemand pools' Ready pods together. Each class is one `PoolModel` (one
FIFO queue in front of its replicas, least-loaded replica first), so a request waits in that queue while
its class has no Ready pod, and a pod that disappears hands its in-flight requests back to the queue.

A terminating pod (deletionTimestamp set) drains, as a Service and a server with a preStop wait make a
real one do: it takes no new requests and finishes the ones it runs. Only what it still runs when it
finally vanishes (its grace period ran out) is handed back, and counted as requeued.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from leadtime.emulator.snapshot import (
    E2E_BUCKETS_S,
    TTFT_BUCKETS_S,
    HistogramAccumulator,
    PodMetrics,
    Snapshot,
)
from leadtime.policy.types import BATCH, BATCH_ONDEMAND, INTERACTIVE
from leadtime.replica import PoolModel, ReplicaProfile, Request

if TYPE_CHECKING:
    from leadtime.replica.pool import _Replica

REQUEST_CLASSES = ("interactive", "batch")
CLASS_OF_POOL: Mapping[str, str] = {INTERACTIVE: "interactive", BATCH: "batch", BATCH_ONDEMAND: "batch"}
# The pool a class's queue is reported under while none of its pods is Ready.
HOME_POOL: Mapping[str, str] = {"interactive": INTERACTIVE, "batch": BATCH}

# Model time advances on a fixed grid of this many trace seconds, so pod changes land on grid points
# whatever the wall-clock jitter of the loop (arrivals are exact regardless: the model is event-driven).
DEFAULT_STEP_S = 0.5
# After the last arrival, how long (trace seconds) the emulator waits for the backlog to drain before it
# calls the replay over and reports what is still unfinished.
DEFAULT_DRAIN_S = 1800.0


class DrainingPoolModel(PoolModel):
    """A PoolModel whose replicas can be set draining: no new request is dispatched to them."""

    def __init__(self, profile: ReplicaProfile, *, start_s: float = 0.0) -> None:
        super().__init__(profile, start_s=start_s)
        self.draining: set[int] = set()

    def drain_replica(self, replica_id: int) -> None:
        """From now on the replica only finishes what it runs; `remove_replica` still removes it."""
        if replica_id not in self.replica_ids:
            raise ValueError(f"replica {replica_id} does not exist")
        self.draining.add(replica_id)

    def remove_replica(self, replica_id: int) -> int:
        self.draining.discard(replica_id)
        return super().remove_replica(replica_id)

    @property
    def serving(self) -> int:
        """Replicas that take new requests."""
        return len(self.replica_ids) - len(self.draining)

    def _fits(self, replica: _Replica, request: Request) -> bool:
        # Every dispatch path (arrival, a freed slot, the next-arrival lookahead) asks this first.
        return replica.replica_id not in self.draining and super()._fits(replica, request)


@dataclass
class _Pod:
    name: str
    pool: str
    replica_id: int
    draining: bool = False
    ttft: HistogramAccumulator = field(default_factory=lambda: HistogramAccumulator(TTFT_BUCKETS_S))
    e2e: HistogramAccumulator = field(default_factory=lambda: HistogramAccumulator(E2E_BUCKETS_S))
    success_total: int = 0


@dataclass(frozen=True)
class PodChanges:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    requeued: int  # in-flight requests handed back to their class's queue
    draining: tuple[str, ...] = ()  # pods that started terminating: they finish what they run


@dataclass(frozen=True)
class Summary:
    """The end-of-replay report (latencies in exported seconds: trace seconds / time_scale)."""

    trace_s: float
    time_scale: float
    arrived: int
    completed: int
    unfinished: int
    requeued: int
    lost: int
    interactive_p50_ttft_s: float | None
    interactive_p95_ttft_s: float | None
    interactive_p95_e2e_s: float | None
    batch_p95_e2e_s: float | None
    pods_seen: int

    def as_row(self) -> dict[str, object]:
        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}s"

        return {
            "arrived": self.arrived, "completed": self.completed, "unfinished": self.unfinished,
            "requeued": self.requeued, "lost": self.lost,
            "p50_ttft": fmt(self.interactive_p50_ttft_s), "p95_ttft": fmt(self.interactive_p95_ttft_s),
            "p95_e2e": fmt(self.interactive_p95_e2e_s), "batch_p95_e2e": fmt(self.batch_p95_e2e_s),
            "pods_seen": self.pods_seen,
        }


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class EmulatorCore:
    """Replays `requests` (arrival_s relative to the window start) over a changing set of pods."""

    def __init__(
        self,
        requests: Sequence[Request],
        profile: ReplicaProfile,
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        step_s: float = DEFAULT_STEP_S,
        drain_s: float = DEFAULT_DRAIN_S,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.profile = profile
        self.time_scale = time_scale
        self.seed = seed  # the workload is already drawn; kept so a snapshot can say which run it is
        self.step_s = step_s
        self.drain_s = drain_s
        self._requests = sorted(requests, key=lambda r: (r.arrival_s, r.request_id))
        self._cursor = 0  # next request of the trace not yet handed to a model
        self.duration_s = self._requests[-1].arrival_s if self._requests else 0.0
        self.trace_s = 0.0
        self._models = {c: DrainingPoolModel(profile, start_s=0.0) for c in REQUEST_CLASSES}
        self._pods: dict[str, _Pod] = {}
        self._pod_of_replica: dict[int, _Pod] = {}
        self._pods_seen = 0
        self._arrived = dict.fromkeys(REQUEST_CLASSES, 0)
        self._completed = dict.fromkeys(REQUEST_CLASSES, 0)
        self._drained = dict.fromkeys(CLASS_OF_POOL, 0)  # pool -> completed by a terminating pod
        self._requeued = dict.fromkeys(HOME_POOL.values(), 0)
        self._requeued.update({BATCH_ONDEMAND: 0})
        self._finished: list[Request] = []  # every completed request, for the summary

    # --- pods ---

    def sync_pods(self, ready: Mapping[str, str], terminating: Mapping[str, str] | None = None) -> PodChanges:
        """Make the replicas the given Ready pods (name -> pool) plus the known ones now terminating
        (name -> pool), which drain; any other replica is gone. At the current trace time."""
        terminating = terminating or {}

        def kept(name: str) -> bool:
            pool = self._pods[name].pool
            return ready.get(name) == pool or terminating.get(name) == pool

        removed = tuple(sorted(name for name in self._pods if not kept(name)))
        requeued = 0
        for name in removed:
            pod = self._pods.pop(name)
            del self._pod_of_replica[pod.replica_id]
            n = self._models[CLASS_OF_POOL[pod.pool]].remove_replica(pod.replica_id)
            self._requeued[pod.pool] += n
            requeued += n
        added = tuple(sorted(name for name, pool in ready.items() if name not in self._pods and pool in CLASS_OF_POOL))
        for name in added:
            pool = ready[name]
            rid = self._models[CLASS_OF_POOL[pool]].add_replica(self._pods_seen)
            self._pods_seen += 1
            self._pods[name] = self._pod_of_replica[rid] = _Pod(name=name, pool=pool, replica_id=rid)
        draining = tuple(sorted(name for name in terminating if name in self._pods and not self._pods[name].draining))
        for name in draining:
            pod = self._pods[name]
            pod.draining = True
            self._models[CLASS_OF_POOL[pod.pool]].drain_replica(pod.replica_id)
        return PodChanges(added=added, removed=removed, requeued=requeued, draining=draining)

    # --- time ---

    def advance_to(self, trace_s: float) -> None:
        """Run the models up to the last grid point at or before `trace_s` (never backwards)."""
        target = math.floor(trace_s / self.step_s + 1e-9) * self.step_s
        while self.trace_s + 1e-9 < target:
            end = min(target, self.trace_s + self.step_s)
            self._submit_until(end)
            for request_class, model in self._models.items():
                for request in model.advance(end - model.now_s):
                    self._on_finished(request_class, request)
            self.trace_s = end

    def submit(self, request_class: str, input_tokens: int, output_tokens: int) -> Request:
        """A live request arriving now (the fake model server); its fields fill in as the model runs."""
        if request_class not in self._models:
            raise ValueError(f"unknown request class {request_class!r}")
        request = Request(
            arrival_s=self.trace_s, input_tokens=max(1, input_tokens), output_tokens=max(1, output_tokens),
            request_class=request_class, request_id=-1,
        )
        self._models[request_class].submit(request)
        self._arrived[request_class] += 1
        return request

    def _submit_until(self, end_s: float) -> None:
        while self._cursor < len(self._requests) and self._requests[self._cursor].arrival_s < end_s:
            request = self._requests[self._cursor]
            self._cursor += 1
            request_class = request.request_class if request.request_class in self._models else "interactive"
            self._models[request_class].submit(request)
            self._arrived[request_class] += 1

    def _on_finished(self, request_class: str, request: Request) -> None:
        self._completed[request_class] += 1
        self._finished.append(request)
        pod = self._pod_of_replica.get(request.replica_id) if request.replica_id is not None else None
        if pod is None:  # finished at the same instant its pod was removed; still a completion
            return
        pod.success_total += 1
        if pod.draining:
            self._drained[pod.pool] += 1
        if request.ttft_s is not None:
            pod.ttft.observe(request.ttft_s / self.time_scale)
        if request.e2e_s is not None:
            pod.e2e.observe(request.e2e_s / self.time_scale)

    # --- reading ---

    @property
    def arrived_all(self) -> bool:
        return self._cursor >= len(self._requests)

    @property
    def finished(self) -> bool:
        """Every request arrived and completed, or the drain time after the last arrival ran out."""
        if not self.arrived_all:
            return False
        outstanding = sum(m.queue_depth + m.running for m in self._models.values())
        return outstanding == 0 or self.trace_s >= self.duration_s + self.drain_s

    def snapshot(self) -> Snapshot:
        pods = []
        for pod in sorted(self._pods.values(), key=lambda p: p.name):
            model = self._models[CLASS_OF_POOL[pod.pool]]
            metrics = model.metrics(pod.replica_id)
            # The queue is split over the pods that take requests; a draining pod waits for nothing.
            waiting = 0.0 if pod.draining else model.queue_depth / max(1, model.serving)
            pods.append(
                PodMetrics(
                    pod=pod.name, pool=pod.pool, waiting=waiting, running=metrics.running,
                    success_total=pod.success_total, ttft=pod.ttft.freeze(), e2e=pod.e2e.freeze(),
                    draining=pod.draining,
                )
            )
        # A class with serving pods reports its queue through them; one without (none Ready, or all
        # draining) reports it at the router, also when it is zero, so the queue-depth series never
        # goes missing.
        served = {CLASS_OF_POOL[p.pool] for p in self._pods.values() if not p.draining}
        unrouted = {HOME_POOL[c]: m.queue_depth for c, m in self._models.items() if c not in served}
        return Snapshot(
            trace_s=self.trace_s,
            pods=tuple(pods),
            unrouted_waiting=unrouted,
            arrived_total=dict(self._arrived),
            requeued_total=dict(self._requeued),
            lost_total={HOME_POOL[c]: m.dropped for c, m in self._models.items()},
            completed_total=dict(self._completed),
            trace_finished=self.finished,
            drained_total=dict(self._drained),
        )

    def summary(self) -> Summary:
        interactive = [r for r in self._finished if r.request_class != "batch"]
        batch = [r for r in self._finished if r.request_class == "batch"]
        scale = self.time_scale

        def q(values: list[float], p: float) -> float | None:
            v = _quantile(values, p)
            return None if v is None else v / scale

        arrived = sum(self._arrived.values())
        completed = sum(self._completed.values())
        return Summary(
            trace_s=self.trace_s,
            time_scale=scale,
            arrived=arrived,
            completed=completed,
            unfinished=arrived - completed,
            requeued=sum(self._requeued.values()),
            lost=sum(m.dropped for m in self._models.values()),
            interactive_p50_ttft_s=q([r.ttft_s for r in interactive if r.ttft_s is not None], 0.50),
            interactive_p95_ttft_s=q([r.ttft_s for r in interactive if r.ttft_s is not None], 0.95),
            interactive_p95_e2e_s=q([r.e2e_s for r in interactive if r.e2e_s is not None], 0.95),
            batch_p95_e2e_s=q([r.e2e_s for r in batch if r.e2e_s is not None], 0.95),
            pods_seen=self._pods_seen,
        )
