"""The ModelDeployment models: defaults, validation with field paths, policy mapping, conditions."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from leadtime.api import (
    DEGRADED,
    READY,
    InvalidModelDeployment,
    ModelDeploymentSpec,
    get_condition,
    parse_model_deployment,
    set_condition,
    to_policy_config,
)
from leadtime.api.testing import load_invalid_specs
from leadtime.policy.types import BatchConfig, FloorWindow, PolicyConfig

ROOT = Path(__file__).resolve().parents[1]
INVALID_SPECS = load_invalid_specs(ROOT / "tests" / "data" / "invalid_specs.yaml")
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def minimal(**spec):
    return {
        "apiVersion": "serving.leadtime.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m"},
        "spec": {"model": {"image": "img"}, **spec},
    }


def test_minimal_spec_gets_the_documented_defaults():
    spec = parse_model_deployment(minimal()).spec
    assert spec.mode == "active"
    assert spec.control_interval_seconds == 5
    assert (spec.replicas.warm_floor, spec.replicas.max) == (1, 20)
    assert spec.slo.latency == "ttft" and spec.slo.p95_seconds == 2.0
    assert spec.pools.interactive.node_selector == {"leadtime.dev/capacity-type": "on-demand"}
    assert spec.pools.batch.enabled is False
    assert spec.pools.batch.tolerations[0].effect == "NoSchedule"
    assert "vllm:num_requests_waiting" in spec.metrics.queries.queue_depth


def test_camel_case_round_trip():
    dumped = parse_model_deployment(minimal(replicas={"warmFloor": 2, "max": 5})).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert dumped["spec"]["replicas"] == {"warmFloor": 2, "max": 5, "schedule": []}
    assert "costAware" in dumped["spec"]["scaleDown"]
    assert "e2eP95" in dumped["spec"]["metrics"]["queries"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(example):
    parse_model_deployment(yaml.safe_load(example.read_text()))


def test_at_least_twelve_kinds_of_invalid_spec_are_tabled():
    assert len({case.name for case in INVALID_SPECS}) >= 12
    assert {case.by for case in INVALID_SPECS} == {"schema", "cel"}


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.name)
def test_invalid_spec_is_rejected_naming_the_field(case):
    with pytest.raises(InvalidModelDeployment) as raised:
        parse_model_deployment(case.object)
    assert case.field in [path for path, _ in raised.value.errors]
    assert case.field in str(raised.value)


def test_unknown_field_is_rejected():
    with pytest.raises(InvalidModelDeployment, match="spec.replicas.maxReplicas"):
        parse_model_deployment(minimal(replicas={"maxReplicas": 3}))


def test_unknown_query_placeholder_is_rejected():
    with pytest.raises(InvalidModelDeployment, match=r"spec.metrics.queries.running: unknown placeholder"):
        parse_model_deployment(minimal(metrics={"queries": {"running": "sum(x{job='${job}'})"}}))


def test_drain_defaults_give_a_long_grace_period_and_a_short_prestop():
    drain = parse_model_deployment(minimal()).spec.drain
    assert (drain.termination_grace_period_seconds, drain.pre_stop_sleep_seconds) == (600, 10)


@given(grace_s=st.integers(-10, 4000), pre_stop_s=st.integers(-10, 4000))
def test_drain_seconds_are_bounded_and_the_prestop_fits_in_the_grace_period(grace_s, pre_stop_s):
    obj = minimal(drain={"terminationGracePeriodSeconds": grace_s, "preStopSleepSeconds": pre_stop_s})
    problems = []
    if not 0 <= grace_s <= 3600:
        problems.append("spec.drain.terminationGracePeriodSeconds")
    if not 0 <= pre_stop_s <= 3600:
        problems.append("spec.drain.preStopSleepSeconds")
    if not problems and pre_stop_s > grace_s:
        problems.append("spec.drain.preStopSleepSeconds")
    if not problems:
        drain = parse_model_deployment(obj).spec.drain
        assert (drain.termination_grace_period_seconds, drain.pre_stop_sleep_seconds) == (grace_s, pre_stop_s)
        return
    with pytest.raises(InvalidModelDeployment) as raised:
        parse_model_deployment(obj)
    assert set(problems) <= {path for path, _ in raised.value.errors}


def test_integer_quantities_are_accepted_as_strings():
    spec = parse_model_deployment(minimal(model={"image": "i", "resources": {"requests": {"cpu": 4}}})).spec
    assert spec.model.resources.requests == {"cpu": "4"}


def test_to_policy_config_maps_every_field():
    spec = ModelDeploymentSpec.model_validate(
        yaml.safe_load((ROOT / "examples" / "llama-70b-batch.yaml").read_text())["spec"]
    )
    assert to_policy_config(spec) == PolicyConfig(
        slo_p95_s=4.0,
        slo_metric="ttft",
        warm_floor=1,
        max_replicas=8,
        floors=(FloorWindow(start_minute=8 * 60, end_minute=20 * 60, replicas=2),),
        gpus_per_replica=4,
        price_per_gpu_hour=3.43,
        max_concurrency=64,
        replica_capacity_rps=1.0,
        cold_start_prior_s=90.0,
        forecast_enabled=True,
        scale_down_stabilization_s=300.0,
        scale_down_cost_aware=True,
        control_interval_s=5.0,
        batch=BatchConfig(
            enabled=True,
            max_replicas=6,
            deadline_s=3600.0,
            price_per_gpu_hour=1.5,
            fallback_enabled=True,
            fallback_after_pending_s=120.0,
            fallback_max_replicas=2,
        ),
    )


def test_to_policy_config_defaults_match_the_policy_defaults():
    # The CRD's defaults and the policy's are the same numbers, so a bare spec behaves as documented.
    config = to_policy_config({"model": {"image": "img"}})
    assert config == PolicyConfig()


def test_to_policy_config_keeps_windows_that_wrap_midnight():
    config = to_policy_config(
        {
            "model": {"image": "i"},
            "replicas": {"schedule": [{"start": "22:30", "end": "02:00", "minReplicas": 1}]},
        }
    )
    assert config.floors == (FloorWindow(start_minute=22 * 60 + 30, end_minute=120, replicas=1),)


def test_to_policy_config_reports_invalid_specs_with_paths():
    with pytest.raises(InvalidModelDeployment, match=r"spec.replicas.warmFloor"):
        to_policy_config({"model": {"image": "i"}, "replicas": {"warmFloor": 30, "max": 3}})


T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 12, 5, 0, tzinfo=UTC)


def test_set_condition_adds_a_new_condition_with_transition_time():
    conditions = set_condition(
        [], READY, "False", "ReplicasStarting", "1 of 3 ready", T0, observed_generation=2
    )
    assert conditions == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "ReplicasStarting",
            "message": "1 of 3 ready",
            "observedGeneration": 2,
            "lastTransitionTime": "2025-01-01T12:00:00Z",
        }
    ]


def test_set_condition_keeps_transition_time_when_status_is_unchanged():
    first = set_condition([], READY, "False", "ReplicasStarting", "1 of 3 ready", T0)
    second = set_condition(first, READY, "False", "ReplicasPending", "no GPU node has room", T1)
    assert second[0]["lastTransitionTime"] == "2025-01-01T12:00:00Z"
    assert second[0]["reason"] == "ReplicasPending"


def test_set_condition_moves_transition_time_on_transition_and_keeps_others():
    conditions = set_condition([], DEGRADED, "False", "AsExpected", "", T0)
    conditions = set_condition(conditions, READY, "False", "ReplicasStarting", "", T0)
    conditions = set_condition(conditions, READY, "True", "ReplicasReady", "3 of 3 ready", T1)
    assert [c["type"] for c in conditions] == ["Degraded", "Ready"]
    assert get_condition(conditions, READY)["lastTransitionTime"] == "2025-01-01T12:05:00Z"
    assert get_condition(conditions, DEGRADED)["lastTransitionTime"] == "2025-01-01T12:00:00Z"


def test_set_condition_does_not_mutate_its_input():
    original = set_condition([], READY, "False", "ReplicasStarting", "", T0)
    snapshot = [dict(c) for c in original]
    set_condition(original, READY, "True", "ReplicasReady", "", T1)
    assert original == snapshot


def test_api_is_pure():
    forbidden = {"kopf", "kubernetes", "requests", "time", "prometheus_api_client"}
    for source in (ROOT / "operator" / "leadtime" / "api").glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{source.name} imports {name}"
