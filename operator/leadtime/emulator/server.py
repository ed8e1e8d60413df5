"""`leadtime serve-fake`: one replica of the shared model behind a real HTTP server.

For clusters where pods really run (kind): each pod runs this instead of vLLM. `POST /v1/completions`
(OpenAI-style) returns after the latency the replica model gives the request under the current load;
`GET /metrics` exports the same vLLM-named series as the emulator; `GET /health` answers 503 until the
configured cold start has passed, so a readiness probe on it delays Ready like a model load would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry

from leadtime.cli import CliError
from leadtime.emulator.core import EmulatorCore
from leadtime.emulator.exporter import TEXT_CONTENT_TYPE, SnapshotCollector, exposition
from leadtime.emulator.workload import load_profile
from leadtime.policy.types import POOLS
from leadtime.replica import ReplicaProfile, parse_duration_s

# Model time advances in steps this small (seconds of model time): well under one decode step of the
# fastest profile (7 ms), so the latency a client sees is the modelled one to within a few ms.
LIVE_STEP_S = 0.001
# The stepping thread wakes this often (wall seconds).
LIVE_TICK_S = 0.004
# A client that asks for no max_tokens gets OpenAI's default.
DEFAULT_MAX_TOKENS = 16
# Requests never wait longer than this for the model (wall seconds): a stuck model must not hang clients.
REQUEST_TIMEOUT_S = 600.0


def estimate_tokens(prompt: object) -> int:
    """Prompt tokens: a list of token ids counts as is; text at ~4 characters per token (English BPE)."""
    if isinstance(prompt, list):
        if prompt and isinstance(prompt[0], list):
            return sum(len(p) for p in prompt)
        if prompt and isinstance(prompt[0], str):
            return sum(estimate_tokens(p) for p in prompt)
        return len(prompt)
    return max(1, len(str(prompt)) // 4)


class FakeReplica:
    """One emulated replica on the wall clock: thread-safe submit/wait, metrics snapshot."""

    def __init__(
        self, profile: ReplicaProfile, *, pod: str, pool: str, time_scale: float = 1.0,
        cold_start_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.pool = pool
        self.time_scale = time_scale
        self._clock = clock
        self._started = clock()
        self._ready_at = self._started + cold_start_s
        self._core = EmulatorCore([], profile, time_scale=time_scale, step_s=LIVE_STEP_S)
        self._core.sync_pods({pod: pool})
        self._request_class = "batch" if pool != "interactive" else "interactive"
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-replica", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    @property
    def ready(self) -> bool:
        return self._clock() >= self._ready_at

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._core.advance_to((self._clock() - self._started) * self.time_scale)
                self._lock.notify_all()
            self._stop.wait(LIVE_TICK_S)

    def complete(self, input_tokens: int, output_tokens: int, timeout_s: float = REQUEST_TIMEOUT_S) -> tuple[float, float]:
        """Submit a request and block until the model finishes it; returns (ttft_s, e2e_s) in wall seconds."""
        with self._lock:
            request = self._core.submit(self._request_class, input_tokens, output_tokens)
            done = self._lock.wait_for(lambda: request.finished_s is not None, timeout=timeout_s)
        if not done:
            raise TimeoutError("the model did not finish the request in time")
        return (request.ttft_s or 0.0) / self.time_scale, (request.e2e_s or 0.0) / self.time_scale

    def snapshot(self):  # noqa: ANN201 - a Snapshot; typed loosely for the collector callback
        with self._lock:
            return self._core.snapshot()


def _completion_body(model: str, prompt_tokens: int, completion_tokens: int, ttft_s: float, e2e_s: float) -> dict:
    text = " ".join(["lorem"] * completion_tokens)
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        # Not part of the OpenAI schema: what the model decided, so tests and curious users can check it.
        "leadtime": {"ttft_s": round(ttft_s, 6), "e2e_s": round(e2e_s, 6)},
    }


def make_handler(replica: FakeReplica, registry: CollectorRegistry, model_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            return  # one line per request would drown the pod's log

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode())

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                self._send(200, exposition(registry), TEXT_CONTENT_TYPE)
            elif self.path in ("/health", "/ready"):
                if replica.ready:
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._send(503, b"loading model\n", "text/plain")
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/v1/completions":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                max_tokens = int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
                if max_tokens < 1:
                    raise ValueError("max_tokens must be >= 1")
            except (ValueError, TypeError) as err:
                self._json(400, {"error": {"message": str(err), "type": "invalid_request_error"}})
                return
            if not replica.ready:
                self._json(503, {"error": {"message": "model is loading", "type": "unavailable"}})
                return
            prompt_tokens = estimate_tokens(body.get("prompt", ""))
            try:
                ttft_s, e2e_s = replica.complete(prompt_tokens, max_tokens)
            except TimeoutError as err:
                self._json(504, {"error": {"message": str(err), "type": "timeout"}})
                return
            self._json(200, _completion_body(str(body.get("model") or model_name), prompt_tokens, max_tokens, ttft_s, e2e_s))

    return Handler


def build_server(
    host: str, port: int, profile: ReplicaProfile, *, namespace: str, model_deployment: str, pool: str,
    pod: str, time_scale: float = 1.0, cold_start_s: float = 0.0,
) -> tuple[ThreadingHTTPServer, FakeReplica]:
    """The server and its replica, not yet serving (call `serve_forever` and `replica.start()`)."""
    replica = FakeReplica(profile, pod=pod, pool=pool, time_scale=time_scale, cold_start_s=cold_start_s)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(replica.snapshot, namespace, model_deployment, router=False))
    server = ThreadingHTTPServer((host, port), make_handler(replica, registry, model_deployment))
    server.daemon_threads = True
    return server, replica


def serve_fake(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    pool = args.pool or os.environ.get("POOL") or "interactive"
    if pool not in POOLS:
        raise CliError(f"--pool {pool!r}: expected one of {', '.join(POOLS)}")
    cold_start = args.cold_start or os.environ.get("COLD_START") or "0"
    try:
        cold_start_s = parse_duration_s(cold_start)
    except ValueError as err:
        raise CliError(str(err)) from err
    try:
        server, replica = build_server(
            args.host, args.port, profile,
            namespace=args.namespace or os.environ.get("POD_NAMESPACE", "default"),
            model_deployment=args.model_deployment or os.environ.get("MODEL_DEPLOYMENT", profile.name),
            pool=pool,
            pod=args.pod or os.environ.get("POD_NAME") or socket.gethostname(),
            time_scale=args.time_scale,
            cold_start_s=cold_start_s / args.time_scale,
        )
    except OSError as err:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {err}") from err
    replica.start()

    def _stop(signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"[serve-fake] profile {profile.name}, pool {pool}, listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        replica.stop()
        server.server_close()
    return 0
