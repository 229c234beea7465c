# photcal: two commands on a fresh machine, `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: run test test-cluster unit install system-deps bench fuzz clean lint lint-fix lock tom-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# the locked versions (requirements.lock) as constraints: every install resolves the same
LOCK := requirements.lock
# the Python client (clients/python) too: its tests run in `make test`
$(STAMP): $(BIN)/python pyproject.toml clients/python/pyproject.toml $(LOCK)
	$(BIN)/pip install -q -c $(LOCK) -e '.[test,dev]' -e ./clients/python
	touch $(STAMP)

# the numba kernels, compiled once into their on-disk cache (services and tests then load them)
COMPILED := $(VENV)/.compiled
KERNELS  := $(wildcard shared/jit.py services/calibrate/core/*.py services/ingest/rows.py)
$(COMPILED): $(STAMP) $(KERNELS)
	$(BIN)/photcal compile
	touch $(COMPILED)

install: $(STAMP) $(COMPILED)

# the TOM Toolkit plug-in's virtualenv: tomtoolkit pins numpy<2.2 and Django 5, which the main .venv
# cannot hold. Its versions are clients/tom_photcal/requirements-tom.lock (pip freeze of a clean install);
# tests/tom/test_tom_plugin.py runs the TOM project's tests with it.
TOM_VENV  := .venv-tom
TOM_LOCK  := clients/tom_photcal/requirements-tom.lock
TOM_STAMP := $(TOM_VENV)/.installed
$(TOM_STAMP): $(TOM_LOCK) clients/tom_photcal/pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(TOM_VENV)
	$(TOM_VENV)/bin/pip install -q --upgrade pip
	$(TOM_VENV)/bin/pip install -q -c $(TOM_LOCK) -e ./clients/python -e ./clients/tom_photcal
	touch $(TOM_STAMP)

## the TOM Toolkit plug-in's own virtualenv (.venv-tom), which the plug-in's tests run in
tom-venv: $(TOM_STAMP)

system-deps:
	@bash tools/system-deps.sh chromium

## the whole stack on embedded NATS and database, data under ./var/
run: install
	$(BIN)/photcal run

## every test: unit, integration (real nats-server, nx-27017, HTTP), deploy checks, the TOM plug-in (the cluster test apart)
test: install system-deps tom-venv
	$(PYTEST) -q --ignore=tests/cluster

## the distributed deployment: 3 clustered nats-servers (R3 streams), nodes and services killed (about 1 min)
test-cluster: install
	$(PYTEST) -q tests/cluster

## only the fast unit tests
unit: install
	$(PYTEST) -q tests/unit

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) $(COMPILED)
	$(BIN)/pip install -q -c $(LOCK) -e '.[test,dev,bench]'
	touch $(BENCH_STAMP)

## benchmarks (accuracy vs truth and vs STDPipe, latency, throughput, catalogue, archive recalibration): prints figures
bench: $(BENCH_STAMP) system-deps
	$(BIN)/python -m bench $(BENCH)

## ruff (lint and format) and mypy (pydantic plugin), configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## the automatic fixes (ruff check --fix, ruff format), then what mypy still finds
lint-fix: $(STAMP)
	bash tools/lint-fix.sh

## re-resolve requirements.lock (runtime + test + dev + bench) from pyproject.toml;
## LOCK_FLAGS=--upgrade moves the unpinned ones to their newest releases.
## Versions, not hashes: pip refuses hashes in a constraints file for an editable or local install.
LOCK_FLAGS ?=
lock: $(BIN)/python
	$(BIN)/pip install -q -c $(LOCK) pip-tools
	$(BIN)/pip-compile -q --strip-extras --extra test --extra dev --extra bench \
		--allow-unsafe --no-emit-index-url --no-emit-find-links \
		$(LOCK_FLAGS) -o $(LOCK) pyproject.toml

FUZZ_SECONDS ?= 60
## fuzz the catalogue parser and the upload form for a fixed budget (atheris, else hypothesis)
fuzz: install
	$(BIN)/python -m tests.fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) $(TOM_VENV) var .pytest_cache test-artifacts
