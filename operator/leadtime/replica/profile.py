"""Replica profiles: how fast one serving replica is, how much it holds, what it costs, how it starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from leadtime.replica.coldstart import ColdStart, parse_cold_start


def _at_least(value, floor: float):  # noqa: ANN001, ANN202 - floats or numpy arrays alike
    """max(value, floor) that also works element-wise on arrays of token counts."""
    return (value + floor + abs(value - floor)) / 2.0


def _at_most(value, ceiling: float):  # noqa: ANN001, ANN202
    return (value + ceiling - abs(value - ceiling)) / 2.0


@dataclass(frozen=True)
class LoadTest:
    """What a load test of one replica at the profile's reference token mix reports."""

    capacity_rps: float  # requests/s one replica sustains with each request within the SLO
    concurrency: int  # the concurrent requests it ran at
    input_tokens: float
    output_tokens: float


@dataclass(frozen=True)
class ReplicaProfile:
    """One model on one replica (its GPUs), as a continuous-batching server sees it.

    Service model (shared by the per-request `PoolModel` and the fluid simulator):
    - prefill runs at `prefill_tokens_per_s` and has priority over decode (a prefill stalls the batch);
    - each decode step emits one token for every decoding sequence and takes
      `tpot_s(b) = decode_base_s + decode_per_seq_s * b` for a batch of `b` sequences;
    - at most `max_num_seqs` sequences run at once, and their tokens (input + output) must fit in
      `kv_cache_tokens`; the rest wait in a FIFO queue.

    `reference_input_tokens`/`reference_output_tokens` are the fixed token mix of the profile's load
    test (`load_test`), the only capacity figure a user has before traffic arrives.
    """

    name: str
    prefill_tokens_per_s: float
    decode_base_s: float
    decode_per_seq_s: float
    max_num_seqs: int
    kv_cache_tokens: int
    gpus_per_replica: int = 1
    price_per_gpu_hour: float = 6.88
    cold_start: ColdStart = field(default_factory=lambda: parse_cold_start("lognormal:p50=22.7,p99=51.9"))
    notes: str = ""
    reference_input_tokens: float = 1000.0
    reference_output_tokens: float = 250.0

    def __post_init__(self) -> None:
        if self.prefill_tokens_per_s <= 0 or self.decode_base_s <= 0 or self.decode_per_seq_s < 0:
            raise ValueError(f"profile {self.name}: speeds must be positive")
        if self.max_num_seqs < 1 or self.kv_cache_tokens < 1:
            raise ValueError(f"profile {self.name}: max_num_seqs and kv_cache_tokens must be >= 1")
        if not (self.reference_input_tokens >= 1 and self.reference_output_tokens >= 1):
            raise ValueError(f"profile {self.name}: reference token counts must be >= 1")

    def with_cold_start(self, spec: str | ColdStart) -> ReplicaProfile:
        cold = parse_cold_start(spec) if isinstance(spec, str) else spec
        return replace(self, cold_start=cold)

    # --- the service-time functions; the fluid simulator and PoolModel both use these ---

    def tpot_s(self, batch: float) -> float:
        """Seconds per decode step (one token for each sequence) with `batch` sequences decoding."""
        return self.decode_base_s + self.decode_per_seq_s * max(batch, 1.0)

    def prefill_s(self, input_tokens: float) -> float:
        return _at_least(input_tokens, 1.0) / self.prefill_tokens_per_s

    def max_concurrency(self, input_tokens: float, output_tokens: float) -> int:
        """Sequences that fit at once for requests of this size (the slot limit or the KV limit)."""
        per_seq = max(input_tokens + output_tokens, 1.0)
        return max(1, min(self.max_num_seqs, int(self.kv_cache_tokens // per_seq)))

    def cost_per_request_s(self, input_tokens: float, output_tokens: float, batch: float) -> float:
        """Replica-seconds one request uses at a steady decode batch: its prefill plus its share of decode."""
        b = max(batch, 1.0)
        return self.prefill_s(input_tokens) + output_tokens * self.tpot_s(b) / b

    def throughput_rps(self, input_tokens: float, output_tokens: float, batch: float | None = None) -> float:
        """Requests/s one replica completes at a steady batch (default: full, the saturation throughput)."""
        b = self.max_concurrency(input_tokens, output_tokens) if batch is None else batch
        return 1.0 / self.cost_per_request_s(input_tokens, output_tokens, b)

    def latency_at(self, input_tokens: float, output_tokens: float, batch: float,
                   mix_tokens: tuple[float, float] | None = None) -> tuple[float, float]:
        """(ttft_s, e2e_s) of a request once admitted, at a steady batch of `batch` running sequences.

        Token counts may be numpy arrays (one latency per request); `batch` is a scalar. `mix_tokens`
        is the mean (input, output) of the running batch, which sets how often others' prefills stall
        this request (default: the batch looks like this request).

        At throughput X = 1/cost the replica spends a share f = X * prefill of its time in prefill; the
        other b-1 sequences' prefills stall this one's decode for f * (b-1)/b of the time, and a new prefill
        waits on average for half a prefill of those ahead of it (M/D/1-like, f/(2(1-f))).
        """
        b = max(batch, 1.0)
        prefill = self.prefill_s(input_tokens)
        mix_in, mix_out = mix_tokens if mix_tokens is not None else (input_tokens, output_tokens)
        busy_prefill = _at_most(self.prefill_s(mix_in) / self.cost_per_request_s(mix_in, mix_out, b), 0.95)
        # waiting for others' prefills costs their (mix) prefill length, not this request's
        mix_prefill = self.prefill_s(mix_in)
        stalled = busy_prefill * (b - 1.0) / b
        ttft = prefill + mix_prefill * stalled / (2.0 * (1.0 - stalled))
        e2e = ttft + _at_least(output_tokens - 1.0, 0.0) * self.tpot_s(b) / (1.0 - stalled)
        return ttft, e2e

    def load_test(self, slo_metric: str, slo_p95_s: float) -> LoadTest:
        """A concurrency sweep at the reference mix (as vLLM's benchmark_serving --max-concurrency or
        guidellm's sweep run it): the highest throughput at a concurrency whose latency still meets the
        SLO. Every request of a fixed-mix test has the same latency, so its p95 is that latency; a mix
        whose SLO even one request alone misses reports concurrency 1."""
        inp, out = self.reference_input_tokens, self.reference_output_tokens
        index = 0 if slo_metric == "ttft" else 1
        batch = self.max_concurrency(inp, out)
        while batch > 1 and self.latency_at(inp, out, batch)[index] > slo_p95_s:
            batch -= 1
        return LoadTest(self.throughput_rps(inp, out, batch), batch, inp, out)

    def replicas_for(
        self, rate_rps: float, input_tokens: float, output_tokens: float, utilisation: float = 0.85
    ) -> int:
        """Replicas needed to serve `rate_rps` with each at most `utilisation` of saturation throughput."""
        if rate_rps <= 0:
            return 0
        return math.ceil(rate_rps / (utilisation * self.throughput_rps(input_tokens, output_tokens)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefill_tokens_per_s": self.prefill_tokens_per_s,
            "decode_base_s": self.decode_base_s,
            "decode_per_seq_s": self.decode_per_seq_s,
            "max_num_seqs": self.max_num_seqs,
            "kv_cache_tokens": self.kv_cache_tokens,
            "gpus_per_replica": self.gpus_per_replica,
            "price_per_gpu_hour": self.price_per_gpu_hour,
            "cold_start": self.cold_start.spec,
            "reference_input_tokens": self.reference_input_tokens,
            "reference_output_tokens": self.reference_output_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplicaProfile:
        known = {
            "name", "prefill_tokens_per_s", "decode_base_s", "decode_per_seq_s", "max_num_seqs",
            "kv_cache_tokens", "gpus_per_replica", "price_per_gpu_hour", "cold_start", "notes",
            "reference_input_tokens", "reference_output_tokens",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown profile fields: {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        if "cold_start" in kwargs:
            kwargs["cold_start"] = parse_cold_start(str(kwargs["cold_start"]))
        return cls(**kwargs)
