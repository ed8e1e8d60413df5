"""The fluid replica pool of one service group: a FIFO queue of cohorts, admission, departures, drains.

Per tick, arrivals join the queue; cohorts are admitted while the group's serving replicas (Ready and
not terminating) have free slots (`max_concurrency` of the head's tokens); running work departs at
the rate the replica model gives for the current batch per replica (Little: R / (b * cost_per_request_s(b))).

A replica chosen for removal takes its share of the running work with it into a drain: it admits
nothing new, and its requests finish at the replica model's speed for that batch, spread evenly over
one service time (the newest finishes last), so the replica exits one service time after the drain
began, or at the termination grace deadline, when what is still running goes back to the queue.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from leadtime.replica import ReplicaProfile


@dataclass
class Drain:
    """A terminating replica's in-flight work: `requests` at drain start, finishing linearly until `done_s`."""

    requests: float
    start_s: float
    done_s: float  # when its last request finishes (drain start + one service time)
    exit_s: float  # when the pod is gone: done_s, or the grace deadline if that comes first
    left: float  # requests still running


@dataclass
class Group:
    pools: tuple[str, ...]
    queue: deque = field(default_factory=deque)  # [arrival_s, count, in, out, first_request_index]
    queued: float = 0.0
    running: float = 0.0  # on serving replicas
    running_in: float = 0.0
    running_out: float = 0.0
    dropped: float = 0.0
    requeued: float = 0.0
    mean_running: float = 0.0  # time-average of running over the current tick (Little), for idleness
    completed: float = 0.0  # requests finished (serving and draining replicas): request_success_total
    drains: list[Drain] = field(default_factory=list)

    @property
    def draining(self) -> float:
        return sum(d.left for d in self.drains)


def in_service_s(profile: ReplicaProfile, inp: float, out: float, b: float) -> float:
    """A request's time in service at batch b per replica (below one per replica it runs alone: b = 1)."""
    return max(b, 1.0) * profile.cost_per_request_s(inp, out, b)


def arrive(group: Group, now_s: float, count: float, inp: float, out: float, first: int,
           queue_limit: int | None) -> float:
    """Arrivals join the queue; returns how many were dropped (beyond the queue limit)."""
    dropped = 0.0
    if queue_limit is not None and group.queued + count > queue_limit:
        dropped = float(min(count, math.ceil(group.queued + count - queue_limit)))
        group.dropped += dropped
        count -= dropped
    if count > 0:
        group.queue.append([now_s, float(count), inp, out, first])
        group.queued += count
    return dropped


def admit(group: Group, profile: ReplicaProfile, n_ready: int, dt: float) -> tuple[list[tuple[list, float, float]], float]:
    """Admit queued cohorts into free slots; returns (cohort, count, extra wait) per admission and the batch."""
    admitted: list[tuple[list, float, float]] = []
    free = n_ready * profile.max_concurrency(group.queue[0][2], group.queue[0][3]) - group.running
    # Slots also free up during the tick as running work completes; a request admitted into one of
    # those waits until its slot frees (position / departure rate), not a whole tick.
    departure_rps = 0.0
    if group.running > 0:
        b_now = group.running / n_ready
        departure_rps = group.running / in_service_s(profile, group.running_in, group.running_out, b_now)
        free += departure_rps * dt
    slots_now = free - departure_rps * dt
    position = 0.0
    while group.queue and free >= 1.0 - 1e-9:
        cohort = group.queue[0]
        k = min(cohort[1], math.floor(free + 1e-9)) if cohort[4] >= 0 else min(cohort[1], free)
        if k <= 0:
            break
        extra_wait = max(0.0, position + k / 2.0 - slots_now) / departure_rps if departure_rps else 0.0
        admitted.append((cohort, k, min(extra_wait, dt)))
        position += k
        free -= k
        total = group.running + k
        group.running_in = (group.running * group.running_in + k * cohort[2]) / total
        group.running_out = (group.running * group.running_out + k * cohort[3]) / total
        group.running = total
        group.queued -= k
        if k >= cohort[1] - 1e-9:
            group.queue.popleft()
        else:
            cohort[1] -= k
    if not group.queue:
        group.queued = 0.0
    return admitted, group.running / n_ready


def depart(group: Group, profile: ReplicaProfile, n_ready: int, dt: float) -> None:
    """The serving replicas' running work departs over one tick (and the tick's mean running is kept)."""
    group.mean_running = 0.0
    if group.running > 0 and n_ready > 0:
        b = group.running / n_ready
        service_s = in_service_s(profile, group.running_in, group.running_out, b)
        # Little within the tick: work shorter than the tick is in service for service_s of it.
        group.mean_running = group.running * min(1.0, service_s / dt)
        done = group.running * min(1.0, dt / service_s)
        group.completed += done
        group.running -= done
        if group.running < 1e-6:
            group.completed += group.running
            group.running = 0.0


def start_drain(group: Group, profile: ReplicaProfile, n_ready: int, now_s: float, grace_s: float) -> Drain:
    """A Ready replica stops taking requests: its share of the running work drains with it."""
    share = group.running / n_ready if n_ready > 0 and group.running > 1e-9 else 0.0
    if share <= 1e-9:
        return Drain(0.0, now_s, now_s, now_s, 0.0)
    group.running -= share
    done_s = now_s + in_service_s(profile, group.running_in, group.running_out, share)
    drain = Drain(share, now_s, done_s, min(done_s, now_s + grace_s), share)
    group.drains.append(drain)
    return drain


def step_drains(group: Group, now_s: float, dt: float) -> float:
    """Draining work finishes over the tick ending at now + dt; returns the mean running on drains.

    At a grace deadline the requests still running go back to the queue front, with the mean arrival
    time of requests in flight at the drain's start (they lose their progress and count as requeued).
    """
    end_s = now_s + dt
    mean = 0.0
    kept = []
    for d in group.drains:
        span_s = d.done_s - d.start_s
        left_at_end = d.requests * max(0.0, (d.done_s - end_s) / span_s) if span_s > 0 else 0.0
        mean += (d.left + left_at_end) / 2.0
        if end_s >= d.exit_s - 1e-9:
            # The pod exits within this tick: finished work completes, the rest is re-queued.
            left_at_exit = d.requests * max(0.0, (d.done_s - d.exit_s) / span_s) if span_s > 0 else 0.0
            group.completed += d.left - left_at_exit
            if left_at_exit > 1e-9:
                arrival_s = d.start_s - span_s / 2.0
                group.queue.appendleft([arrival_s, left_at_exit, group.running_in, group.running_out, -1])
                group.queued += left_at_exit
                group.requeued += left_at_exit
            continue
        group.completed += d.left - left_at_end
        d.left = left_at_end
        kept.append(d)
    group.drains = kept
    return mean
