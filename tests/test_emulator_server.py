"""`leadtime serve-fake` over real HTTP on 127.0.0.1: completions take the modelled time, metrics follow."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from leadtime.emulator.server import build_server
from leadtime.replica import get_profile

PROFILE = get_profile("llama-8b-h100")


@pytest.fixture
def fake_server() -> Iterator[str]:
    server, replica = build_server(
        "127.0.0.1", 0, PROFILE, namespace="ns", model_deployment="llama", pool="interactive", pod="llama-0"
    )
    replica.start()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    replica.stop()


def post(url: str, body: dict) -> tuple[int, dict, float]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), time.monotonic() - started
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), time.monotonic() - started


@pytest.mark.timeout(60)
def test_completion_honours_max_tokens_and_takes_the_modelled_time(fake_server: str):
    status, body, elapsed = post(f"{fake_server}/v1/completions", {"model": "llama", "prompt": "x" * 8000, "max_tokens": 100})
    assert status == 200
    assert body["object"] == "text_completion"
    assert body["usage"] == {"prompt_tokens": 2000, "completion_tokens": 100, "total_tokens": 2100}
    assert len(body["choices"][0]["text"].split()) == 100
    # Model: prefill 2000 tokens at 20k tok/s (0.1 s) + 99 decode steps of 7.15 ms (0.708 s).
    expected_s = 0.1 + 99 * 0.00715
    assert body["leadtime"]["e2e_s"] == pytest.approx(expected_s, abs=0.01)
    assert expected_s - 0.02 < elapsed < expected_s + 0.5

    with urllib.request.urlopen(f"{fake_server}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'vllm:request_success_total{model_deployment="llama",namespace="ns",pod="llama-0",pool="interactive"} 1.0' in metrics
    assert "vllm:time_to_first_token_seconds_bucket" in metrics
    assert 'pod=""' not in metrics  # one real server has no router queue to report


@pytest.mark.timeout(60)
def test_concurrent_requests_share_the_batch(fake_server: str):
    results: list[tuple[int, dict, float]] = []

    def one() -> None:
        results.append(post(f"{fake_server}/v1/completions", {"prompt": "hello " * 100, "max_tokens": 50}))

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200] * 16
    # Decoding 16 at once is slower per token than alone (tpot grows with the batch), but far from 16x.
    slowest = max(r[1]["leadtime"]["e2e_s"] for r in results)
    alone = PROFILE.prefill_s(150) + 49 * PROFILE.tpot_s(1)
    assert alone < slowest < 4 * alone


def test_bad_requests_get_400(fake_server: str):
    assert post(f"{fake_server}/v1/completions", {"prompt": "x", "max_tokens": -1})[0] == 400
    assert post(f"{fake_server}/v1/nothing", {})[0] == 404
