"""The thin shell around the emulator core: wall clock, pod polling, the metrics HTTP server, file_sd.

All modelling happens in `EmulatorCore` on trace time; this loop only maps wall time to trace time
(trace_s = time_scale x wall seconds since start), feeds the current Ready pods, and publishes snapshots.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from leadtime.cli import CliError
from leadtime.emulator.core import EmulatorCore, Summary
from leadtime.emulator.exporter import SnapshotCollector, serve_metrics
from leadtime.emulator.pods import PodView
from leadtime.emulator.snapshot import Snapshot
from leadtime.emulator.workload import load_profile, load_requests

log = logging.getLogger("leadtime.emulator")

# Wall seconds between model advances: small enough that pod changes land within a tenth of a second,
# large enough that two cores are not spent on the loop. The model itself steps on a fixed trace grid.
TICK_S = 0.1
# How often a progress line is printed.
PROGRESS_EVERY_S = 10.0


@dataclass(frozen=True)
class EmulateOptions:
    kubeconfig: str | None
    namespace: str
    name: str
    trace: str
    time_scale: float = 10.0
    seed: int = 0
    port: int = 9400
    profile: str | None = None
    start_s: float = 0.0
    duration_s: float | None = None
    rate_scale: float = 1.0
    wait_for_ready: int = 0  # hold trace time until this many pods are Ready
    keep_serving: bool = False
    poll_interval_s: float = 0.5
    file_sd: str | None = None
    summary_json: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EmulateOptions:
        return cls(
            kubeconfig=args.kubeconfig, namespace=args.namespace, name=args.name, trace=args.trace,
            time_scale=args.time_scale, seed=args.seed, port=args.port, profile=args.profile,
            start_s=args.start, duration_s=args.duration, rate_scale=args.rate_scale,
            wait_for_ready=args.wait_for_ready, keep_serving=args.keep_serving,
            poll_interval_s=args.poll_interval, file_sd=args.file_sd, summary_json=args.summary_json,
        )


class Published:
    """The latest snapshot, swapped atomically for the scrape thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def set(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def get(self) -> Snapshot | None:
        with self._lock:
            return self._snapshot


def write_file_sd(path: str, port: int, namespace: str, name: str) -> None:
    """A Prometheus file_sd target for this emulator; written atomically so Prometheus never reads half."""
    target = [{"targets": [f"127.0.0.1:{port}"], "labels": {"job": "leadtime-emulator", "emulator": f"{namespace}/{name}"}}]
    tmp = Path(f"{path}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(target, indent=2) + "\n")
    os.replace(tmp, path)


def drive(
    core: EmulatorCore,
    list_pods: Callable[[], PodView | Mapping[str, str]],
    publish: Callable[[Snapshot], None],
    *,
    time_scale: float,
    poll_interval_s: float,
    wait_for_ready: int,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
    on_progress: Callable[[Snapshot], None] | None = None,
) -> None:
    """Advance the core in step with the wall clock until the trace ends or `stop` is set.

    `list_pods` returns a PodView, or just the Ready pods (name -> pool) when nothing terminates."""
    wall_start: float | None = None if wait_for_ready > 0 else clock()
    next_poll = clock()
    next_progress = clock() + PROGRESS_EVERY_S
    while not stop.is_set():
        now = clock()
        if now >= next_poll:
            try:
                listed = list_pods()
            except Exception as err:  # an API hiccup must not stop the replay; keep the last pod set
                log.warning("listing pods failed (%s); keeping the previous set", err)
            else:
                view = listed if isinstance(listed, PodView) else PodView(ready=dict(listed))
                core.sync_pods(view.ready, view.terminating)
                if wall_start is None and len(view.ready) >= wait_for_ready:
                    wall_start = now
                    log.info("%d Ready pods; trace replay starts", len(view.ready))
            next_poll = now + poll_interval_s
        if wall_start is not None:
            core.advance_to((now - wall_start) * time_scale)
        snapshot = core.snapshot()
        publish(snapshot)
        if on_progress and now >= next_progress:
            on_progress(snapshot)
            next_progress = now + PROGRESS_EVERY_S
        if core.finished:
            return
        stop.wait(TICK_S)


def _progress_line(snapshot: Snapshot) -> None:
    ready = {pool: 0 for pool in ("interactive", "batch", "batch-ondemand")}
    waiting = sum(snapshot.unrouted_waiting.values())
    running = 0
    for pod in snapshot.pods:
        ready[pod.pool] = ready.get(pod.pool, 0) + (0 if pod.draining else 1)
        waiting += pod.waiting
        running += pod.running
    print(
        f"[emulate] trace {snapshot.trace_s:7.0f}s  arrived {sum(snapshot.arrived_total.values()):6d}  "
        f"done {sum(snapshot.completed_total.values()):6d}  waiting {waiting:4.0f}  running {running:4d}  "
        f"pods {ready['interactive']}/{ready['batch']}/{ready['batch-ondemand']}  "
        f"draining {sum(1 for pod in snapshot.pods if pod.draining)}  "
        f"requeued {sum(snapshot.requeued_total.values())}  lost {sum(snapshot.lost_total.values())}",
        flush=True,
    )


def print_summary(summary: Summary, finished: bool) -> None:
    head = "trace finished" if finished else f"stopped at trace {summary.trace_s:.0f}s"
    print(f"[emulate] {head}: " + "  ".join(f"{k}={v}" for k, v in summary.as_row().items()), flush=True)


def run_emulate(options: EmulateOptions) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    profile = load_profile(options.profile)
    requests = load_requests(
        options.trace, start_s=options.start_s, duration_s=options.duration_s,
        rate_scale=options.rate_scale, seed=options.seed,
    )
    if not requests:
        raise CliError(f"{options.trace}: no requests in the selected window")
    core = EmulatorCore(requests, profile, time_scale=options.time_scale, seed=options.seed)
    try:
        from leadtime.emulator.pods import PodLister

        lister = PodLister(options.kubeconfig, options.namespace, options.name)
    except Exception as err:
        raise CliError(f"cannot load kubeconfig: {err}") from err

    published = Published()
    published.set(core.snapshot())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(published.get, options.namespace, options.name))
    try:
        server = serve_metrics("127.0.0.1", options.port, registry)
    except OSError as err:
        raise CliError(f"cannot listen on 127.0.0.1:{options.port}: {err}") from err
    if options.file_sd:
        write_file_sd(options.file_sd, options.port, options.namespace, options.name)

    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"[emulate] {len(requests)} requests over {core.duration_s:.0f} trace s, x{options.time_scale:g} "
        f"(~{core.duration_s / options.time_scale:.0f} wall s), profile {profile.name}, metrics on "
        f"127.0.0.1:{options.port}/metrics",
        flush=True,
    )
    try:
        drive(
            core, lister.pods, published.set, time_scale=options.time_scale,
            poll_interval_s=options.poll_interval_s, wait_for_ready=options.wait_for_ready, stop=stop,
            on_progress=_progress_line,
        )
        summary = core.summary()
        print_summary(summary, core.finished)
        if options.summary_json:
            Path(options.summary_json).write_text(json.dumps(asdict(summary), indent=2) + "\n")
        if core.finished and options.keep_serving:
            print("[emulate] still serving metrics; Ctrl-C to stop", flush=True)
            stop.wait()
    finally:
        if options.file_sd:
            Path(options.file_sd).unlink(missing_ok=True)
        server.shutdown()
        server.server_close()
    return 0 if core.finished or stop.is_set() else 1

