# Every target does its own set-up on a fresh clone: .venv, the package and its extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24,<27"
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m scalebridge.codegen.warmup
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(VENV)/bin/scalebridge demo --out out

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q -n 2 -m "not slow"

test-slow: $(STAMP)
	$(VENV)/bin/pytest -q -n 2 -m slow

bench: $(BENCH_STAMP)
	$(PY) benchmarks/ode_roadrunner.py
	$(PY) benchmarks/ssa.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
