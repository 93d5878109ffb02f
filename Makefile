# recforge: `make demo` runs the main job end to end, `make test` runs the tests.
# Both create .venv and install what they need on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Datasets are read from ../shared/data when it exists (never committed; see README).
ifeq ($(RECFORGE_DATA_DIR),)
  ifneq ($(wildcard ../shared/data),)
    export RECFORGE_DATA_DIR := $(abspath ../shared/data)
  endif
endif
export MPLBACKEND := Agg
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-heavy fuzz bench bench-scale install-demo install-test clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[demo]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[demo,test]"
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[demo,test,bench]"
	touch $@

install-demo: $(VENV)/.demo-installed
install-test: $(VENV)/.test-installed

demo: $(VENV)/.demo-installed
	$(PY) -m recforge.demo --output demo-output

test: $(VENV)/.test-installed
	$(PY) -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

# the Gowalla accuracy cases (tens of minutes on 2 cores), kept out of `make test`'s 20-minute budget
test-heavy: $(VENV)/.test-installed
	RECFORGE_HEAVY_TESTS=1 $(PY) -m pytest -q -m heavy $(PYTEST_ARGS)

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -q -n 2 -m "not slow" $(PYTEST_ARGS)

# longer property-based fuzzing of the HTTP API and every file reader (make test runs 25 examples each)
FUZZ_EXAMPLES ?= 1000
fuzz: $(VENV)/.test-installed
	RECFORGE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/fuzz tests/serving/test_serving_fuzz.py $(PYTEST_ARGS)

bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks.run_all

# the scale curve at 1M, 10M and 20M interactions (~45 min on a shared 2-core machine; SCALE_SIZES=1M,10M,20M,100M
# adds the Netflix-sized row: opt-in, needs ~8 GB free and ~2-3 hours there; see benchmarks/results/scale.md)
SCALE_SIZES ?= 1M,10M,20M
bench-scale: $(VENV)/.bench-installed
	$(PY) -m benchmarks.bench_scale --sizes $(SCALE_SIZES) $(SCALE_ARGS)

clean:
	rm -rf $(VENV) demo-output .pytest_cache
