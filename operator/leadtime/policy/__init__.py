"""Pure scaling policies: leadtime's own `decide()` and the baselines it is compared with.

`make_policy(name, **params)` builds any of them for the simulator; the operator calls `decide()`.
"""

from __future__ import annotations

from typing import Any

from leadtime.policy.baselines.hpa import HpaPolicy, HpaRpsPolicy, KedaWaitingPolicy
from leadtime.policy.baselines.kpa import KpaPolicy
from leadtime.policy.baselines.static import StaticPolicy
from leadtime.policy.leadtime import LeadtimePolicy, decide
from leadtime.policy.types import Decision, Policy, PolicyConfig

# name → class; each class takes its target and behaviour knobs as keyword arguments and lists its
# target grid with `default_sweep(config)` (`leadtime.sim.sweep` adds the knobs).
POLICIES: dict[str, Any] = {
    "leadtime": LeadtimePolicy,
    "hpa": HpaPolicy,
    "keda-waiting": KedaWaitingPolicy,
    "hpa-rps": HpaRpsPolicy,
    "kpa": KpaPolicy,
    "static": StaticPolicy,
}


def make_policy(name: str, **params: Any) -> Policy:
    """Build a registered policy; unknown names and parameters raise ValueError."""
    try:
        policy_class = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(sorted(POLICIES))})") from None
    try:
        policy: Policy = policy_class(**params)
    except TypeError as err:
        raise ValueError(f"policy {name!r}: {err}") from None
    return policy


__all__ = ["POLICIES", "Decision", "LeadtimePolicy", "PolicyConfig", "decide", "make_policy"]
