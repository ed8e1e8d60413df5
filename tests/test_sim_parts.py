"""The simulator's parts alone: the fluid pool's drains, the pods' victims, the spot trace file."""

from __future__ import annotations

import json
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from leadtime.policy.types import INTERACTIVE
from leadtime.replica import get_profile
from leadtime.sim import fluid
from leadtime.sim.lifecycle import Pods, Replica, load_spot_trace

PROFILE = get_profile("llama-8b-h100").with_cold_start("30s")


def test_a_drain_finishes_its_share_evenly_over_one_service_time() -> None:
    group = fluid.Group(("interactive",), running=40.0, running_in=200.0, running_out=1000.0)
    drain = fluid.start_drain(group, PROFILE, 4, 0.0, 600.0)
    assert drain.requests == 10.0 and group.running == 30.0  # a quarter leaves with the replica
    service_s = fluid.in_service_s(PROFILE, 200.0, 1000.0, 10.0)
    assert drain.exit_s == pytest.approx(service_s)
    t = 0.0
    while group.drains:
        fluid.step_drains(group, t, 1.0)
        t += 1.0
    assert group.completed == pytest.approx(10.0) and group.requeued == 0 and not group.queue
    assert t == pytest.approx(service_s, abs=1.0)


def test_a_drain_past_its_grace_requeues_the_rest() -> None:
    group = fluid.Group(("interactive",), running=40.0, running_in=200.0, running_out=1000.0)
    drain = fluid.start_drain(group, PROFILE, 4, 0.0, 2.0)
    assert drain.exit_s == 2.0
    fluid.step_drains(group, 0.0, 1.0)
    fluid.step_drains(group, 1.0, 1.0)
    service_s = fluid.in_service_s(PROFILE, 200.0, 1000.0, 10.0)
    assert group.requeued == pytest.approx(10.0 * (1 - 2.0 / service_s))
    assert group.completed + group.requeued == pytest.approx(10.0)
    assert group.queued == pytest.approx(group.requeued) and not group.drains


def test_an_idle_victim_exits_at_once() -> None:
    group = fluid.Group(("interactive",))
    assert fluid.start_drain(group, PROFILE, 3, 50.0, 600.0).exit_s == 50.0
    assert not group.drains


def test_victims_go_unscheduled_then_starting_then_newest_ready_and_terminating_pods_vanish() -> None:
    drained: list[float] = []

    def drain(pool: str, now: float, grace_s: float) -> float:
        drained.append(now)
        return now + 10.0

    pods = Pods((INTERACTIVE,), PROFILE, seed=0, epoch_s=0.0, end_s=1000.0, spot_capacity=None, drain=drain)
    pods.replicas[INTERACTIVE] = [Replica(0.0, 0.0, 0.0), Replica(10.0, 30.0, 40.0), Replica(50.0, 30.0, 80.0),
                                  Replica(90.0, 30.0, 120.0)]
    pods.desired[INTERACTIVE] = 4
    pods.apply(INTERACTIVE, 3, 100.0)  # the starting pod (created 90 s) goes first, without a drain
    assert not drained and [r.created_s for r in pods.replicas[INTERACTIVE]] == [0.0, 10.0, 50.0]
    pods.apply(INTERACTIVE, 2, 100.0)  # then the newest Ready one, drained
    assert drained == [100.0] and [r.created_s for r in pods.replicas[INTERACTIVE]] == [0.0, 10.0]
    state = pods.pool_state(INTERACTIVE, 100.0)
    assert (state.desired, state.ready_count, state.starting_count) == (2, 2, 0)
    # billed: the starting pod 90 -> 100 s, the drained one 50 -> 110 s (its exit)
    assert pods.billed_gpu_s[INTERACTIVE] == pytest.approx(10.0 + 60.0)


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=50),
       st.floats(min_value=0.001, max_value=1e6), st.floats(min_value=0.0, max_value=1e7))
def test_any_spot_file_of_the_documented_shape_loads(tmp_path_factory, counts, gap_s, t_s) -> None:  # noqa: ANN001
    path = tmp_path_factory.mktemp("spot") / "s.json"
    path.write_text(json.dumps({"metadata": {"gap_seconds": gap_s}, "data": counts}))
    trace = load_spot_trace(path)
    assert trace.at(t_s) in counts and trace.at(0.0) == counts[0]


@pytest.mark.parametrize("doc", [{"data": [1]}, {"metadata": {"gap_seconds": 0}, "data": [1]},
                                 {"metadata": {"gap_seconds": 60}, "data": [-1]},
                                 {"metadata": {"gap_seconds": 60}, "data": []},
                                 {"metadata": {"gap_seconds": 60}, "data": ["x"]}])
def test_a_bad_spot_file_is_one_error_naming_it(tmp_path: pathlib.Path, doc: dict) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="bad.json: not a spot trace"):
        load_spot_trace(path)
