"""The pure core imports no cluster client, no HTTP library and no clock (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "operator" / "leadtime"
PURE_AREAS = ("policy", "replica", "api")
FORBIDDEN = {"kopf", "kubernetes", "requests", "urllib3", "time", "httpx", "prometheus_api_client"}


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
            "import_module",
            "__import__",
        }:
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                modules.add(node.args[0].value)
    return modules


def pure_sources() -> list[Path]:
    return sorted(path for area in PURE_AREAS for path in (PACKAGE / area).rglob("*.py"))


def test_there_is_pure_code_to_check():
    assert any(path.parent.name == "policy" for path in pure_sources())


@pytest.mark.parametrize("path", pure_sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_imports_nothing_impure(path):
    bad = {m for m in imported_modules(path.read_text()) if m.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import time", {"time"}),
        ("from kubernetes import client", {"kubernetes"}),
        ("import kopf as k", {"kopf"}),
        ("import importlib\nimportlib.import_module('requests')", {"requests"}),
        ("from . import time", set()),  # a relative sibling module, not the stdlib clock
        ("import math", set()),
    ],
)
def test_the_checker_itself(source, flagged):
    assert {m for m in imported_modules(source) if m.split(".")[0] in FORBIDDEN} == flagged
