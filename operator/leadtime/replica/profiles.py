"""Named replica profiles, with the assumptions behind each number.

The numbers are round figures from public vLLM measurements (bf16, no speculative decoding, no prefix
cache); they are meant to give the right *shape* (throughput per replica, how latency grows with the
batch, how long a replica takes to start), not to predict one specific deployment. Override any of them
with a YAML profile (`leadtime simulate --profile my.yaml`).

Each profile states the token mix of its load test (`reference_input_tokens`/`reference_output_tokens`):
1,000 input and 250 output tokens, a chat-sized request near the middle of public serving benchmarks.
`profile.load_test(slo_metric, slo_p95_s)` is that test's result, the capacity prior the simulator hands
leadtime (never the trace's own token counts).
"""

from __future__ import annotations

from leadtime.replica.coldstart import parse_cold_start
from leadtime.replica.profile import ReplicaProfile

PROFILES: dict[str, ReplicaProfile] = {
    # Llama-3.1-8B on one H100-80G.
    # - prefill: 16 GFLOP/token; ~400 dense TFLOP/s at ~50% MFU gives ~20k tokens/s.
    # - decode: memory-bound; 16 GB of weights at ~2.5 TB/s effective is ~7 ms per step at batch 1,
    #   and each extra sequence adds KV reads, ~0.15 ms (tpot 26 ms at batch 128).
    # - KV cache: 32 layers x 8 KV heads x 128 dims x 2 (K,V) x 2 bytes = 128 KiB/token; ~56 GB left
    #   after weights at 0.9 memory utilisation -> ~430k tokens. vLLM's default max_num_seqs is 256.
    # - cold start: production base-model load p50 22.7 s, p99 51.9 s (Alibaba GenAI trace).
    # - price: on-demand H100 ~ $6.88 per GPU-hour (AWS p5).
    "llama-8b-h100": ReplicaProfile(
        name="llama-8b-h100",
        prefill_tokens_per_s=20_000.0,
        decode_base_s=0.007,
        decode_per_seq_s=0.00015,
        max_num_seqs=256,
        kv_cache_tokens=430_000,
        gpus_per_replica=1,
        price_per_gpu_hour=6.88,
        cold_start=parse_cold_start("lognormal:p50=22.7,p99=51.9"),
        notes="Llama-3.1-8B, 1x H100-80G, vLLM bf16",
        reference_input_tokens=1000.0,
        reference_output_tokens=250.0,
    ),
    # Llama-3.1-70B on four H100-80G (tensor parallel 4).
    # - prefill: 140 GFLOP/token over 4 GPUs at ~40% MFU incl. all-reduce -> ~8k tokens/s.
    # - decode: 140 GB of weights over 4 x ~2.5 TB/s plus all-reduce -> ~20 ms per step at batch 1,
    #   +0.25 ms per sequence.
    # - KV cache: 80 layers x 8 KV heads x 128 x 2 x 2 bytes = 320 KiB/token; ~150 GB left -> ~460k tokens.
    # - cold start: ~84 s to load 70B weights into GPU memory from fast local storage.
    "llama-70b-4xh100": ReplicaProfile(
        name="llama-70b-4xh100",
        prefill_tokens_per_s=8_000.0,
        decode_base_s=0.020,
        decode_per_seq_s=0.00025,
        max_num_seqs=256,
        kv_cache_tokens=460_000,
        gpus_per_replica=4,
        price_per_gpu_hour=6.88,
        cold_start=parse_cold_start("lognormal:p50=84,p99=150"),
        notes="Llama-3.1-70B, 4x H100-80G TP4, vLLM bf16",
        reference_input_tokens=1000.0,
        reference_output_tokens=250.0,
    ),
    # Llama-3.1-8B on one A100-80G: ~half the prefill rate and ~1.6x the decode step of an H100.
    "llama-8b-a100": ReplicaProfile(
        name="llama-8b-a100",
        prefill_tokens_per_s=10_000.0,
        decode_base_s=0.011,
        decode_per_seq_s=0.00024,
        max_num_seqs=256,
        kv_cache_tokens=430_000,
        gpus_per_replica=1,
        price_per_gpu_hour=3.43,
        cold_start=parse_cold_start("lognormal:p50=22.7,p99=51.9"),
        notes="Llama-3.1-8B, 1x A100-80G, vLLM bf16",
        reference_input_tokens=1000.0,
        reference_output_tokens=250.0,
    ),
}

DEFAULT_PROFILE = "llama-8b-h100"


def get_profile(name: str) -> ReplicaProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None
