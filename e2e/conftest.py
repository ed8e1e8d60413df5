"""pytest fixtures for the e2e tier; see e2e/harness.py for what they provide and the env switches."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# `pytest e2e` from the repo root: make `import harness` work for every test module under e2e/.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def pytest_collection_modifyitems(items):
    """Everything under e2e/ needs a cluster: mark it e2e even if a module forgets to."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the test namespace's pods and events (taken before the namespace is deleted)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "namespace" in item.funcargs:
        c = item.funcargs.get("cluster") or item._request.getfixturevalue("cluster")
        report.sections.append(("cluster diagnostics", c.diagnostics(item.funcargs["namespace"])))


@pytest.fixture(scope="session")
def cluster():
    c = harness.start_cluster()
    try:
        yield c
    finally:
        harness.stop_cluster(c)


@pytest.fixture
def namespace(cluster, request):
    name = cluster.create_namespace(request.node.name)
    try:
        yield name
    finally:
        cluster.delete_namespace(name)
