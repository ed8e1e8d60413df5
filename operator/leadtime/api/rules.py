"""Cross-field rules, written once: as CEL for the apiserver and as Python for `parse_model_deployment`.

Each model lists its rules in `cel_rules`. The CRD generator copies them into
`x-kubernetes-validations`; the models' shared validator evaluates the Python mirror, so an object the
apiserver rejects is rejected offline with the same message and field path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


@dataclass(frozen=True)
class Rule:
    """One cross-field rule: the CEL the apiserver runs and the Python check that mirrors it."""

    cel: str  # evaluated with `self` bound to the object that declares the rule (after defaulting)
    message: str  # names the offending field, as users see it in `kubectl apply` errors
    field_path: str  # relative to the declaring object, e.g. ".warmFloor"; where the error is reported
    holds: Callable[[Any], bool]  # the Python mirror: True when the object satisfies the rule

    def as_validation(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message, "fieldPath": self.field_path}


def to_camel(snake: str) -> str:
    """`p95_seconds` -> `p95Seconds`, `e2e_p95` -> `e2eP95` (pydantic's to_camel gives `e2EP95`)."""
    first, *rest = snake.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected, rules enforced."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra=lambda schema, cls: _add_validations(schema, cls),
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).cel_rules:
            if not rule.holds(self):
                raise PydanticCustomError("cel", rule.message, {"field_path": rule.field_path})
        return self


def _add_validations(schema: dict[str, Any], cls: Any) -> None:
    rules = cls.__dict__.get("cel_rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.as_validation() for rule in rules]


def field_path_parts(field_path: str) -> tuple[str, ...]:
    """`.schedule` -> ("schedule",); `.pools.batch` -> ("pools", "batch")."""
    return tuple(part for part in re.split(r"[.\[\]]", field_path) if part)
