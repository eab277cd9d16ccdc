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
	$(VENV)/bin/scalebridge demo gene-noise --out out/gene-noise
	$(VENV)/bin/scalebridge demo morphogen --out out/morphogen
	$(VENV)/bin/scalebridge demo binding --out out/binding

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy

# One BLAS thread per test worker: with two workers on two cores, threaded BLAS oversubscribes
# the machine and small dense operations slow down a thousandfold.
test: lint
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -n 2 -m "not slow"

test-slow: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -n 2 -m slow

bench: $(BENCH_STAMP)
	$(PY) benchmarks/ode_roadrunner.py
	$(PY) benchmarks/ssa.py
	$(PY) benchmarks/hybrid.py
	$(PY) benchmarks/diffusion.py
	$(PY) benchmarks/petab.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
