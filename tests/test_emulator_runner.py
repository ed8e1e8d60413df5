"""The emulator's shell loop on a fake clock: wall time maps to trace time, pods are polled, errors tolerated."""

from __future__ import annotations

import json
import threading

from leadtime.emulator.core import EmulatorCore
from leadtime.emulator.runner import _progress_line, drive, write_file_sd
from leadtime.replica import Request, get_profile


class FakeTime(threading.Event):
    """A stop event whose wait() advances a fake wall clock instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        self.now += timeout or 0.0
        return self.is_set()


def requests(n: int, every_s: float) -> list[Request]:
    return [Request(arrival_s=i * every_s, input_tokens=300, output_tokens=30, request_id=i) for i in range(n)]


def test_trace_time_runs_time_scale_times_faster_than_the_wall_clock(capsys):
    fake = FakeTime()
    core = EmulatorCore(requests(100, 1.0), get_profile("llama-8b-h100"), time_scale=10.0)
    published = []
    drive(core, lambda: {"p": "interactive"}, published.append, time_scale=10.0, poll_interval_s=0.5,
          wait_for_ready=0, stop=fake, clock=fake.clock, on_progress=_progress_line)
    assert "[emulate] trace" in capsys.readouterr().out
    assert core.finished
    assert published[-1].completed_total["interactive"] == 100
    # 99 trace seconds of arrivals at x10 take ~10 wall seconds.
    assert 9.5 <= fake.now - 1000.0 <= 11.0


def test_wait_for_ready_holds_trace_time_and_listing_errors_keep_the_last_pods():
    fake = FakeTime()
    core = EmulatorCore(requests(20, 1.0), get_profile("llama-8b-h100"), time_scale=10.0)
    calls = {"n": 0}

    def lister() -> dict[str, str]:
        calls["n"] += 1
        if calls["n"] <= 10:
            return {}  # no pod Ready for 5 wall seconds
        if calls["n"] % 3 == 0:
            raise ConnectionError("apiserver hiccup")
        return {"p": "interactive"}

    published = []
    drive(core, lister, published.append, time_scale=10.0, poll_interval_s=0.5, wait_for_ready=1,
          stop=fake, clock=fake.clock)
    assert core.finished and core.summary().unfinished == 0
    first_with_pod = next(s for s in published if s.pods)
    assert first_with_pod.trace_s == 0.0  # trace time did not move while nothing was Ready


def test_pods_that_start_terminating_drain_instead_of_requeueing():
    from leadtime.emulator.pods import PodView

    fake = FakeTime()
    long = [Request(arrival_s=0.0, input_tokens=300, output_tokens=2000, request_id=i) for i in range(4)]
    core = EmulatorCore(long, get_profile("llama-8b-h100"), time_scale=1.0)
    calls = {"n": 0}

    def lister() -> PodView:
        calls["n"] += 1
        if calls["n"] <= 2:
            return PodView(ready={"a": "interactive", "b": "interactive"})
        return PodView(ready={"a": "interactive"}, terminating={"b": "interactive"})

    published = []
    drive(core, lister, published.append, time_scale=1.0, poll_interval_s=0.5, wait_for_ready=2,
          stop=fake, clock=fake.clock)
    assert core.finished
    assert published[-1].requeued_total["interactive"] == 0
    assert published[-1].drained_total["interactive"] == 2


def test_file_sd_target_is_prometheus_file_sd_json(tmp_path):
    path = tmp_path / "targets" / "emu.json"
    write_file_sd(str(path), 9412, "ns", "llama")
    (group,) = json.loads(path.read_text())
    assert group["targets"] == ["127.0.0.1:9412"]
    assert not list(path.parent.glob("*.tmp"))
