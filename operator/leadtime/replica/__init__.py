"""The replica model: one LLM server with continuous batching, and a pool of them behind a FIFO queue.

Pure: no I/O, no clock. Time is whatever the caller advances, so the same code drives the offline
simulator (virtual time) and the in-cluster emulator (wall time, stepping `advance(dt)` every tick).

Service model (`ReplicaProfile`): prefill at `prefill_tokens_per_s` (prefill first, it stalls decode);
decode emits one token per running sequence every `tpot_s(b) = decode_base_s + decode_per_seq_s * b`;
at most `max_num_seqs` sequences whose input+output tokens fit `kv_cache_tokens`; a FIFO queue in front;
a cold start drawn from `ColdStart` ("30s", "2m", "lognormal:p50=22.7,p99=51.9[,max=80]").

Per-request API (`PoolModel`)::

    pool = PoolModel(get_profile("llama-8b-h100"), queue_limit=None, start_s=0.0)
    rid = pool.add_replica()                 # a Ready replica joins now (the caller models cold start)
    pool.submit(Request(arrival_s=0.3, input_tokens=900, output_tokens=120))  # False if dropped
    done = pool.advance(1.0)                 # -> finished Requests (ttft_s, e2e_s, replica_id set)
    pool.metrics(rid)                        # ReplicaMetrics: waiting, running, kv_cache_usage, counters
    pool.remove_replica(rid)                 # its in-flight requests go back to the queue; returns count
    pool.queue_depth, pool.running, pool.completed, pool.dropped, pool.requeued, pool.now_s

Arrivals may be submitted ahead of time inside the next `advance` window; they join the queue at their
`arrival_s`. A free slot takes the queue head (least-loaded replica first), so `waiting` per replica is the
pool queue split evenly — summing over pods gives the queue depth, as Prometheus would.

Closed-form functions used by the fluid simulator (same numbers as the per-request model):
`profile.tpot_s(b)`, `prefill_s(tokens)`, `max_concurrency(in, out)`, `cost_per_request_s(in, out, b)`,
`throughput_rps(in, out[, b])`, `latency_at(in, out, b) -> (ttft_s, e2e_s)`, `replicas_for(rate, in, out)`,
and `load_test(slo_metric, slo_p95_s) -> LoadTest` at the profile's reference token mix (the capacity prior).
"""

from leadtime.replica.coldstart import ColdStart, parse_cold_start, parse_duration_s
from leadtime.replica.pool import PoolModel, ReplicaMetrics, Request
from leadtime.replica.profile import LoadTest, ReplicaProfile
from leadtime.replica.profiles import DEFAULT_PROFILE, PROFILES, get_profile

__all__ = [
    "ColdStart",
    "DEFAULT_PROFILE",
    "LoadTest",
    "PROFILES",
    "PoolModel",
    "ReplicaMetrics",
    "ReplicaProfile",
    "Request",
    "get_profile",
    "parse_cold_start",
    "parse_duration_s",
]
