# Every target sets itself up: a virtualenv in .venv, the control-plane binaries
# built once from Go modules into a cache keyed by version (see tests/cluster/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv test unit integration test-controllers lint fmt crds lock bench demo bins cluster-up cluster-down clean

help:
	@echo "make demo    run the demo on the embedded local control plane"
	@echo "make test    lint, type-check, unit and integration tests"
	@echo "make bench   benchmarks (planner, operator end-to-end, agent overhead, simulator)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check operator tests benchmarks docs/architecture.py
	$(BIN)/ruff format --check operator tests benchmarks docs/architecture.py
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format operator tests benchmarks docs/architecture.py
	$(BIN)/ruff check --fix operator tests benchmarks docs/architecture.py

unit: venv
	$(BIN)/pytest tests/unit

bins: venv
	bash tests/cluster/build.sh

integration: venv bins
	$(BIN)/pytest tests/integration

test: lint bins
	$(BIN)/pytest tests

# Every workload controller's tests, Kueue's too (`make test` leaves Kueue's out: its cold
# build is ~14 min); each controller is built on first use.
test-controllers: venv bins
	$(BIN)/pytest tests/integration/controllers

crds: venv
	$(BIN)/gpupool crds

# The image's exact dependencies, with hashes, for every platform (the Dockerfile
# installs them with --require-hashes); run after changing pyproject.toml's dependencies.
lock: venv
	$(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
		--custom-compile-command 'make lock' --quiet -o requirements.lock

bench: venv bins
	bash benchmarks/run.sh

demo: venv bins
	$(BIN)/gpupool demo $(DEMO_ARGS)

cluster-up: venv bins
	$(BIN)/python -m gpupool.devcluster up

cluster-down: venv
	$(BIN)/python -m gpupool.devcluster down

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
