"""Property tests of decide(): bounds, determinism, and no scale-down below forecast demand."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leadtime.policy import decide
from leadtime.policy.bounds import floor_replicas
from leadtime.policy.types import (
    INTERACTIVE,
    BatchConfig,
    ClassObservation,
    FloorWindow,
    Observation,
    PolicyConfig,
    PoolState,
    ReadyPod,
)

maybe_rate = st.one_of(st.none(), st.floats(0.0, 500.0))


@st.composite
def configs(draw):
    max_replicas = draw(st.integers(1, 60))
    warm_floor = draw(st.integers(0, max_replicas))
    floors = draw(
        st.lists(
            st.builds(FloorWindow, st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 80)), max_size=2
        )
    )
    return PolicyConfig(
        slo_p95_s=draw(st.floats(0.1, 30.0)),
        slo_metric=draw(st.sampled_from(["ttft", "e2e"])),
        warm_floor=warm_floor,
        max_replicas=max_replicas,
        floors=tuple(floors),
        max_concurrency=draw(st.integers(1, 256)),
        replica_capacity_rps=draw(st.floats(0.05, 50.0)),
        cold_start_prior_s=draw(st.floats(1.0, 900.0)),
        forecast_enabled=draw(st.booleans()),
        scale_down_stabilization_s=draw(st.floats(0.0, 900.0)),
        scale_down_cost_aware=draw(st.booleans()),
        batch=BatchConfig(enabled=draw(st.booleans())),
    )


@st.composite
def observations(draw):
    interactive = ClassObservation(
        arrival_rate_rps=draw(maybe_rate),
        queue_depth=draw(st.one_of(st.none(), st.floats(0.0, 5000.0))),
        running=draw(st.one_of(st.none(), st.floats(0.0, 5000.0))),
        p95_latency_s=draw(st.one_of(st.none(), st.floats(0.0, 120.0))),
    )
    batch = ClassObservation(draw(maybe_rate), draw(st.floats(0.0, 1e5)), draw(st.floats(0.0, 1e3)), None)
    return Observation(
        at_s=0.0,
        interactive=interactive,
        batch=batch,
        available=draw(st.booleans() | st.just(True)),
        stale_s=draw(st.sampled_from([0.0, 5.0, 30.0, 500.0])),
    )


@st.composite
def pools(draw):
    ready = draw(st.integers(0, 70))
    starting = draw(st.integers(0, 10))
    pending = draw(st.integers(0, 5))
    desired = draw(st.integers(0, 80))
    return PoolState(
        desired=desired,
        ready=tuple(
            ReadyPod(ready_at_s=float(i), cold_start_s=draw(st.floats(1.0, 900.0))) for i in range(ready)
        ),
        starting_ages_s=(10.0,) * starting,
        pending_ages_s=(30.0,) * pending,
    )


@st.composite
def scenarios(draw):
    """A config and a short history of decisions, ending in the decision under test."""
    config = draw(configs())
    steps = draw(st.lists(st.tuples(observations(), pools()), min_size=1, max_size=5))
    start_s = draw(st.floats(0.0, 10 * 86_400.0))
    return config, steps, start_s


def replay(config, steps, start_s):
    memory: dict = {}
    results = []
    for index, (observation, pool) in enumerate(steps):
        now_s = start_s + index * config.control_interval_s
        before = copy.deepcopy(memory)
        decision = decide(config, observation, {INTERACTIVE: pool}, memory, now_s)
        assert memory == before, "decide() must not mutate the memory it is given"
        results.append((observation, pool, memory, now_s, decision))
        memory = decision.memory
    return results


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios())
def test_never_below_the_floor_nor_above_max(scenario):
    config, steps, start_s = scenario
    for _, _, _, now_s, decision in replay(config, steps, start_s):
        floor, _ = floor_replicas(config, now_s)
        replicas = decision.pools[INTERACTIVE].replicas
        assert min(floor, config.max_replicas) <= replicas <= config.max_replicas
        assert replicas >= config.warm_floor
        assert decision.pools[INTERACTIVE].reason


@SETTINGS
@given(scenarios())
def test_deterministic(scenario):
    config, steps, start_s = scenario
    for observation, pool, memory, now_s, decision in replay(config, steps, start_s):
        again = decide(config, observation, {INTERACTIVE: pool}, copy.deepcopy(memory), now_s)
        assert again == decision


@SETTINGS
@given(scenarios())
def test_never_scales_down_while_forecast_exceeds_ready_capacity(scenario):
    config, steps, start_s = scenario
    for _, pool, _, _, decision in replay(config, steps, start_s):
        if decision.held or decision.forecast_rps is None:
            continue
        capacity_rps = decision.memory["capacity"]["rps_per_replica"]
        if decision.forecast_rps > pool.ready_count * capacity_rps:
            assert decision.pools[INTERACTIVE].replicas >= min(pool.desired, config.max_replicas)
