"""A pool of continuous-batching replicas, simulated request by request on a clock the caller drives."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

from leadtime.replica.profile import ReplicaProfile

_EPS = 1e-9


@dataclass
class Request:
    """One request. The pool fills in the timestamps; latencies are None until they happen."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    request_class: str = "interactive"
    request_id: int = -1
    admitted_s: float | None = None
    first_token_s: float | None = None
    finished_s: float | None = None
    replica_id: int | None = None  # the replica that served (or is serving) it
    requeued: int = 0  # times it went back to the queue because its replica was removed

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_s is None else self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> float | None:
        return None if self.finished_s is None else self.finished_s - self.arrival_s

    @property
    def queue_s(self) -> float | None:
        return None if self.admitted_s is None else self.admitted_s - self.arrival_s


@dataclass(frozen=True)
class ReplicaMetrics:
    """What a vLLM-style server would export for one replica (gauges now, counters since it was added)."""

    replica_id: int
    waiting: float  # its share of the pool's FIFO queue (the queue split evenly over replicas)
    running: int
    kv_cache_usage: float  # reserved KV tokens / capacity, 0..1
    requests_completed_total: int
    prompt_tokens_total: int
    generation_tokens_total: int
    ttft_seconds_sum: float
    e2e_seconds_sum: float


@dataclass
class _Seq:
    request: Request
    prefill_left_tokens: float
    finish_at_decoded: float = 0.0  # value of the replica's per-sequence token counter when it finishes


@dataclass
class _Replica:
    replica_id: int
    clock_s: float
    prefilling: deque[_Seq] = field(default_factory=deque)
    decode_heap: list[tuple[float, int, _Seq]] = field(default_factory=list)
    decoded_per_seq: float = 0.0  # tokens every decoding sequence has emitted since the replica started
    kv_reserved: int = 0
    version: int = 0
    completed: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    ttft_sum: float = 0.0
    e2e_sum: float = 0.0

    @property
    def running(self) -> int:
        return len(self.prefilling) + len(self.decode_heap)


class PoolModel:
    """Replicas behind one FIFO queue; see the package docstring for the API."""

    def __init__(self, profile: ReplicaProfile, *, queue_limit: int | None = None, start_s: float = 0.0):
        self.profile = profile
        self.queue_limit = queue_limit
        self.now_s = start_s
        self._queue: deque[Request] = deque()
        self._replicas: dict[int, _Replica] = {}
        self._events: list[tuple[float, int, int, int]] = []  # (time, replica_id, version, tiebreak)
        self._ids = itertools.count()
        self._tiebreak = itertools.count()
        self._request_ids = itertools.count()
        self.dropped = 0
        self.requeued = 0
        self.completed = 0

    # --- replicas ---

    def add_replica(self, replica_id: int | None = None) -> int:
        """Add a Ready replica now; it starts pulling from the queue at the next `advance`."""
        rid = next(self._ids) if replica_id is None else replica_id
        if rid in self._replicas:
            raise ValueError(f"replica {rid} already exists")
        self._replicas[rid] = _Replica(replica_id=rid, clock_s=self.now_s)
        return rid

    def remove_replica(self, replica_id: int) -> int:
        """Remove a replica now; its in-flight requests go back to the front of the queue. Returns them."""
        replica = self._replicas.pop(replica_id)
        self._bring_to(replica, self.now_s)
        back = [s.request for s in replica.prefilling] + [s.request for _, _, s in replica.decode_heap]
        for request in back:
            request.admitted_s = None
            request.first_token_s = None
            request.replica_id = None
            request.requeued += 1
        self.requeued += len(back)
        if back:
            merged = sorted([*back, *self._queue], key=lambda r: (r.arrival_s, r.request_id))
            self._queue = deque(merged)
        return len(back)

    @property
    def replica_ids(self) -> list[int]:
        return list(self._replicas)

    # --- requests ---

    def submit(self, request: Request) -> bool:
        """Queue a request (arrival_s may lie inside the next `advance`). False if dropped (queue full)."""
        if self.queue_limit is not None and self.queue_depth >= self.queue_limit:
            self.dropped += 1
            return False
        if request.request_id < 0:
            request.request_id = next(self._request_ids)
        if self._queue and request.arrival_s < self._queue[-1].arrival_s:
            self._queue = deque(sorted([*self._queue, request], key=lambda r: (r.arrival_s, r.request_id)))
        else:
            self._queue.append(request)
        return True

    @property
    def queue_depth(self) -> int:
        """Requests that have arrived and wait for a slot."""
        return sum(1 for r in self._queue if r.arrival_s <= self.now_s + _EPS)

    @property
    def running(self) -> int:
        return sum(r.running for r in self._replicas.values())

    def metrics(self, replica_id: int) -> ReplicaMetrics:
        replica = self._replicas[replica_id]
        share = self.queue_depth / len(self._replicas) if self._replicas else 0.0
        return ReplicaMetrics(
            replica_id=replica_id,
            waiting=share,
            running=replica.running,
            kv_cache_usage=min(1.0, replica.kv_reserved / self.profile.kv_cache_tokens),
            requests_completed_total=replica.completed,
            prompt_tokens_total=replica.prompt_tokens,
            generation_tokens_total=replica.generation_tokens,
            ttft_seconds_sum=replica.ttft_sum,
            e2e_seconds_sum=replica.e2e_sum,
        )

    # --- time ---

    def advance(self, dt_s: float) -> list[Request]:
        """Run the pool for `dt_s` seconds; returns the requests that finished, in finishing order."""
        end_s = self.now_s + dt_s
        finished: list[Request] = []
        self._dispatch(self.now_s)
        while True:
            next_event = self._events[0][0] if self._events else float("inf")
            next_arrival = self._next_dispatchable_arrival()
            t = min(next_event, next_arrival)
            if t > end_s:
                break
            self.now_s = max(self.now_s, t)
            if next_arrival <= next_event:
                self._dispatch(t)
                continue
            _, rid, version, _ = heapq.heappop(self._events)
            replica = self._replicas.get(rid)
            if replica is None or replica.version != version:
                continue
            self._bring_to(replica, t)
            finished.extend(self._complete(replica, t))
            self._fill(replica, t)
            self._schedule(replica)
        self.now_s = end_s
        for replica in self._replicas.values():
            self._bring_to(replica, end_s)
        return finished

    # --- internals ---

    def _fits(self, replica: _Replica, request: Request) -> bool:
        if replica.running >= self.profile.max_num_seqs:
            return False
        need = request.input_tokens + request.output_tokens
        return replica.running == 0 or replica.kv_reserved + need <= self.profile.kv_cache_tokens

    def _next_dispatchable_arrival(self) -> float:
        if not self._queue:
            return float("inf")
        head = self._queue[0]
        if head.arrival_s <= self.now_s + _EPS:
            return float("inf")  # already arrived: it moves when a slot frees (a replica event)
        if any(self._fits(r, head) for r in self._replicas.values()):
            return head.arrival_s
        return float("inf")

    def _dispatch(self, t: float) -> None:
        """Send arrived queue-head requests to the least-loaded replica that has room (FIFO, no skipping)."""
        while self._queue and self._queue[0].arrival_s <= t + _EPS:
            head = self._queue[0]
            candidates = [r for r in self._replicas.values() if self._fits(r, head)]
            if not candidates:
                return
            replica = min(candidates, key=lambda r: (r.running, r.replica_id))
            self._bring_to(replica, t)
            self._admit(replica, self._queue.popleft(), t)
            self._schedule(replica)

    def _fill(self, replica: _Replica, t: float) -> None:
        while self._queue and self._queue[0].arrival_s <= t + _EPS and self._fits(replica, self._queue[0]):
            self._admit(replica, self._queue.popleft(), t)

    def _admit(self, replica: _Replica, request: Request, t: float) -> None:
        request.admitted_s = t
        request.replica_id = replica.replica_id
        replica.kv_reserved += request.input_tokens + request.output_tokens
        replica.prefilling.append(_Seq(request, float(max(request.input_tokens, 1))))

    def _bring_to(self, replica: _Replica, t: float) -> None:
        """Progress the replica from its clock to t; events are scheduled so nothing finishes strictly inside."""
        dt = t - replica.clock_s
        if dt <= 0:
            return
        replica.clock_s = t
        if replica.prefilling:
            head = replica.prefilling[0]
            head.prefill_left_tokens -= dt * self.profile.prefill_tokens_per_s
        elif replica.decode_heap:
            replica.decoded_per_seq += dt / self.profile.tpot_s(len(replica.decode_heap))

    def _complete(self, replica: _Replica, t: float) -> list[Request]:
        finished: list[Request] = []
        if replica.prefilling and replica.prefilling[0].prefill_left_tokens <= 1e-6:
            seq = replica.prefilling.popleft()
            request = seq.request
            request.first_token_s = t  # prefill emits the first token
            replica.prompt_tokens += request.input_tokens
            if request.output_tokens <= 1:
                finished.append(self._finish(replica, seq, t))
            else:
                seq.finish_at_decoded = replica.decoded_per_seq + (request.output_tokens - 1)
                heapq.heappush(replica.decode_heap, (seq.finish_at_decoded, next(self._tiebreak), seq))
        while replica.decode_heap and replica.decode_heap[0][0] <= replica.decoded_per_seq + 1e-6:
            _, _, seq = heapq.heappop(replica.decode_heap)
            finished.append(self._finish(replica, seq, t))
        return finished

    def _finish(self, replica: _Replica, seq: _Seq, t: float) -> Request:
        request = seq.request
        request.finished_s = t
        replica.kv_reserved -= request.input_tokens + request.output_tokens
        replica.completed += 1
        replica.generation_tokens += request.output_tokens
        replica.ttft_sum += request.ttft_s or 0.0
        replica.e2e_sum += request.e2e_s or 0.0
        self.completed += 1
        return request

    def _schedule(self, replica: _Replica) -> None:
        replica.version += 1
        if replica.prefilling:
            left = max(replica.prefilling[0].prefill_left_tokens, 0.0)
            t = replica.clock_s + left / self.profile.prefill_tokens_per_s
        elif replica.decode_heap:
            tokens = max(replica.decode_heap[0][0] - replica.decoded_per_seq, 0.0)
            t = replica.clock_s + tokens * self.profile.tpot_s(len(replica.decode_heap))
        else:
            return
        heapq.heappush(self._events, (t, replica.replica_id, replica.version, next(self._tiebreak)))
