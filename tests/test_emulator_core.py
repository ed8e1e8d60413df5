"""The emulator core on injected trace time: routing by class, pods coming and going, determinism, units."""

from __future__ import annotations

import random

import pytest
from leadtime.emulator.core import EmulatorCore
from leadtime.emulator.workload import load_requests, window
from leadtime.replica import Request, get_profile

PROFILE = get_profile("llama-8b-h100")


def steady(rate_rps: float, duration_s: float, *, seed: int = 1, batch_share: float = 0.0) -> list[Request]:
    rng = random.Random(seed)
    rows, t = [], 0.0
    while t < duration_s:
        t += rng.expovariate(rate_rps)
        request_class = "batch" if rng.random() < batch_share else "interactive"
        rows.append(Request(t, rng.randint(200, 2000), rng.randint(50, 300), request_class=request_class))
    return window(rows)


def run(core: EmulatorCore, until_s: float) -> None:
    core.advance_to(until_s)


def waiting_by_pool(core: EmulatorCore) -> dict[str, float]:
    snap = core.snapshot()
    out: dict[str, float] = dict(snap.unrouted_waiting)
    for pod in snap.pods:
        out[pod.pool] = out.get(pod.pool, 0.0) + pod.waiting
    return out


def test_requests_wait_until_a_pod_is_ready_then_are_served():
    core = EmulatorCore(steady(5.0, 60.0), PROFILE, time_scale=10.0)
    run(core, 30.0)
    snap = core.snapshot()
    assert snap.pods == ()
    assert snap.unrouted_waiting["interactive"] > 100  # the backlog is visible with zero pods
    assert sum(snap.completed_total.values()) == 0

    core.sync_pods({"md-abc": "interactive"})
    run(core, 600.0)
    snap = core.snapshot()
    assert core.finished
    assert snap.completed_total["interactive"] == snap.arrived_total["interactive"] > 250
    assert "interactive" not in snap.unrouted_waiting  # reported by the pod now
    (pod,) = snap.pods
    assert pod.pod == "md-abc" and pod.pool == "interactive"
    assert pod.success_total == snap.completed_total["interactive"]
    assert pod.ttft.count == pod.success_total


def test_classes_go_to_their_pools_and_batch_uses_both_batch_pools():
    core = EmulatorCore(steady(4.0, 120.0, batch_share=0.5), PROFILE)
    core.sync_pods({"i-1": "interactive", "b-1": "batch", "bo-1": "batch-ondemand"})
    run(core, 400.0)
    snap = core.snapshot()
    served = {p.pod: p.success_total for p in snap.pods}
    assert served["i-1"] == snap.completed_total["interactive"]
    assert served["b-1"] + served["bo-1"] == snap.completed_total["batch"]
    assert served["b-1"] > 0 and served["bo-1"] > 0


def test_removed_pod_requeues_in_flight_requests_and_nothing_is_lost():
    # Enough load that the pod has requests in flight at any instant.
    core = EmulatorCore(steady(20.0, 120.0), PROFILE)
    core.sync_pods({"a": "interactive", "b": "interactive"})
    run(core, 60.0)
    running_on_b = next(p.running for p in core.snapshot().pods if p.pod == "b")
    assert running_on_b > 0
    changes = core.sync_pods({"a": "interactive"})
    assert changes.removed == ("b",) and changes.requeued == running_on_b
    run(core, 1000.0)
    snap = core.snapshot()
    assert core.finished
    assert snap.requeued_total["interactive"] == running_on_b
    assert sum(snap.lost_total.values()) == 0
    assert snap.completed_total["interactive"] == snap.arrived_total["interactive"]
    summary = core.summary()
    assert summary.unfinished == 0 and summary.lost == 0 and summary.requeued == running_on_b


def test_pod_whose_pool_label_changes_is_replaced():
    core = EmulatorCore(steady(2.0, 30.0), PROFILE)
    core.sync_pods({"p": "interactive"})
    changes = core.sync_pods({"p": "batch"})
    assert changes.removed == ("p",) and changes.added == ("p",)
    assert [pod.pool for pod in core.snapshot().pods] == ["batch"]


def test_latencies_are_exported_in_wall_seconds():
    """time_scale 10: a trace-time latency of L shows up as L / 10 in the histograms and the summary."""
    requests = [Request(arrival_s=1.0, input_tokens=2000, output_tokens=101, request_id=0)]
    for scale in (1.0, 10.0):
        core = EmulatorCore([Request(**{**r.__dict__}) for r in requests], PROFILE, time_scale=scale)
        core.sync_pods({"p": "interactive"})
        run(core, 10.0)
        (pod,) = core.snapshot().pods
        # Model: prefill 2000 tokens at 20k tok/s = 0.1 s; 100 decode steps at 7.15 ms = 0.715 s.
        assert pod.ttft.sum_s == pytest.approx(0.1 / scale, rel=1e-6)
        assert pod.e2e.sum_s == pytest.approx((0.1 + 100 * 0.00715) / scale, rel=1e-6)


def test_same_seed_same_pod_timeline_gives_identical_metrics():
    def replay(tick_s: float) -> tuple:
        core = EmulatorCore(steady(8.0, 200.0, seed=7), PROFILE, time_scale=10.0)
        t, snaps = 0.0, []
        while t < 400.0:
            # Pod changes at fixed trace times, as the shell would apply them; ticks of different sizes.
            pods = {"a": "interactive"} if t < 100 else {"a": "interactive", "b": "interactive"}
            if 150 <= t:
                pods = {"b": "interactive"}
            core.sync_pods(pods)
            t += tick_s
            core.advance_to(t)
        snap = core.snapshot()
        snaps = [(p.pod, p.success_total, p.ttft.cumulative_counts, round(p.e2e.sum_s, 9)) for p in snap.pods]
        return snap.completed_total["interactive"], snap.requeued_total["interactive"], snaps

    assert replay(0.5) == replay(0.5)
    # A jittery loop that ticks every 0.13 s lands pod changes on the same 0.5 s grid.
    assert replay(0.5) == replay(0.125)


def test_finished_gives_up_after_drain_time_without_pods():
    core = EmulatorCore(steady(1.0, 20.0), PROFILE, drain_s=100.0)
    run(core, 50.0)
    assert not core.finished
    run(core, 200.0)
    assert core.finished
    assert core.summary().unfinished == core.summary().arrived > 0


def test_trace_csv_window_and_rate_scale_use_the_simulator_reader(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,input_tokens,output_tokens,class\n" + "".join(
        f"{i}.5,100,10,{'batch' if i % 4 == 0 else 'interactive'}\n" for i in range(1000)))
    requests = load_requests(str(path))
    assert len(requests) == 1000 and sum(r.request_class == "batch" for r in requests) == 250
    assert load_requests(str(path), rate_scale=0.5, seed=3)[0].arrival_s == load_requests(
        str(path), rate_scale=0.5, seed=3)[0].arrival_s
    assert 400 < len(load_requests(str(path), rate_scale=0.5, seed=3)) < 600
    tripled = load_requests(str(path), rate_scale=3.0, seed=3)
    assert len(tripled) == 3000
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(tripled, tripled[1:], strict=False))
    part = load_requests(str(path), start_s=100.0, duration_s=50.0)
    assert len(part) == 50 and part[0].arrival_s == 0.5 and [r.request_id for r in part] == list(range(50))


def test_rate_csv_expands_to_requests(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("start_s,duration_s,rate_rps,input_tokens,output_tokens\n0,100,2,500,50\n100,100,8,500,50\n")
    requests = load_requests(str(path), seed=1)
    first, second = [r for r in requests if r.arrival_s < 100], [r for r in requests if r.arrival_s >= 100]
    assert 150 < len(first) < 250 and 650 < len(second) < 950
    # lengths are drawn per request around the window's means (the rate trace's default spread)
    assert sum(r.input_tokens for r in requests) / len(requests) == pytest.approx(500, rel=0.15)
    assert len({r.input_tokens for r in requests}) > 100


def test_terminating_pod_drains_takes_nothing_new_and_requeues_nothing_when_it_vanishes_empty():
    core = EmulatorCore(steady(20.0, 120.0), PROFILE)
    core.sync_pods({"a": "interactive", "b": "interactive"})
    run(core, 60.0)
    b = next(p for p in core.snapshot().pods if p.pod == "b")
    assert b.running > 0
    changes = core.sync_pods({"a": "interactive"}, terminating={"b": "interactive"})
    assert changes.draining == ("b",) and changes.removed == () and changes.requeued == 0
    served_before = b.success_total
    run(core, 90.0)
    b_now = next(p for p in core.snapshot().pods if p.pod == "b")
    # Its in-flight requests finished there, and nothing new was given to it.
    assert b_now.draining and b_now.running == 0 and b_now.waiting == 0
    assert b_now.success_total == served_before + b.running
    assert core.snapshot().drained_total["interactive"] == b.running
    changes = core.sync_pods({"a": "interactive"})  # the grace period is over: the pod is gone
    assert changes.removed == ("b",) and changes.requeued == 0
    run(core, 1000.0)
    snap = core.snapshot()
    assert core.finished and snap.requeued_total["interactive"] == 0 and sum(snap.lost_total.values()) == 0
    assert snap.completed_total["interactive"] == snap.arrived_total["interactive"]


def test_a_pod_that_vanishes_while_draining_requeues_only_what_it_still_runs():
    # One long request on each of two pods: the drain window is too short for it to finish.
    requests = [Request(arrival_s=0.1 * i, input_tokens=500, output_tokens=3000, request_id=i) for i in range(4)]
    core = EmulatorCore(requests, PROFILE)
    core.sync_pods({"a": "interactive", "b": "interactive"})
    run(core, 1.0)
    running = {p.pod: p.running for p in core.snapshot().pods}
    assert running == {"a": 2, "b": 2}
    core.sync_pods({"a": "interactive"}, terminating={"b": "interactive"})
    run(core, 2.0)
    assert next(p.running for p in core.snapshot().pods if p.pod == "b") == 2
    changes = core.sync_pods({"a": "interactive"})
    assert changes.requeued == 2
    assert core.snapshot().requeued_total["interactive"] == 2


def test_a_class_whose_pods_all_drain_reports_its_queue_at_the_router():
    core = EmulatorCore(steady(20.0, 120.0), PROFILE)
    core.sync_pods({"a": "interactive"})
    run(core, 30.0)
    core.sync_pods({}, terminating={"a": "interactive"})
    run(core, 40.0)
    snap = core.snapshot()
    assert snap.unrouted_waiting["interactive"] > 0  # arrivals since the drain began wait for a new pod
    assert [p.waiting for p in snap.pods] == [0.0]


def test_a_terminating_pod_never_seen_ready_is_ignored():
    core = EmulatorCore(steady(2.0, 30.0), PROFILE)
    changes = core.sync_pods({}, terminating={"x": "interactive"})
    assert changes == type(changes)(added=(), removed=(), requeued=0, draining=())
    assert core.snapshot().pods == ()
