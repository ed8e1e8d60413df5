"""Helpers for tests of the API, here and against a real API server (e2e)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class InvalidSpec:
    """An object the API server must reject, and the field its rejection names."""

    name: str
    object: dict[str, Any]
    field: str  # e.g. "spec.replicas.warmFloor"; the API server's message contains it
    by: str  # "schema" or "cel"


def with_changes(
    base: dict[str, Any], set_: dict[str, Any] | None = None, unset: list[str] | None = None
) -> dict[str, Any]:
    """A deep copy of `base` with dotted paths replaced or removed (keys with dots only as leaves' values)."""
    obj = copy.deepcopy(base)
    for path, value in (set_ or {}).items():
        *parents, leaf = path.split(".")
        node = obj
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    for path in unset or []:
        *parents, leaf = path.split(".")
        node = obj
        for part in parents:
            node = node[part]
        del node[leaf]
    return obj


def load_invalid_specs(path: str | Path) -> list[InvalidSpec]:
    """The cases of an invalid-spec table such as tests/data/invalid_specs.yaml."""
    table = yaml.safe_load(Path(path).read_text())
    return [
        InvalidSpec(
            name=case["name"],
            object=with_changes(table["base"], case.get("set"), case.get("unset")),
            field=case["field"],
            by=case["by"],
        )
        for case in table["cases"]
    ]
