# leadtime: the two commands users start with are `make demo` and `make test` (see README.md).
PYTHON ?= python3
PYTEST ?= $(PYTHON) -m pytest

.PHONY: setup setup-python setup-cluster test unit e2e demo bench crds cluster-up cluster-down lint

## setup: install everything the tests and the demo need (Python packages, Prometheus, cluster binaries)
setup: setup-python setup-cluster

setup-python:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'

setup-cluster:
	bash e2e/cluster/install-deps.sh

## test: unit + simulator tests, then e2e on a real local control plane
test: setup
	$(PYTEST) tests
	$(PYTEST) e2e

unit:
	$(PYTEST) tests

e2e:
	$(PYTEST) e2e

## demo: local cluster + Prometheus + emulator + operator, a real trace replayed against a sample ModelDeployment
demo: setup
	$(PYTHON) -m leadtime.demo

## bench: simulator benchmarks on the shipped traces; writes docs/benchmarks.md
bench: setup-python
	$(PYTHON) benchmarks/run.py

## crds: regenerate crds/ and the chart's copy from the pydantic models
crds: setup-python
	leadtime crds

cluster-up: setup-cluster
	bash e2e/cluster/up.sh

cluster-down:
	bash e2e/cluster/down.sh

lint:
	ruff check operator tests e2e benchmarks
