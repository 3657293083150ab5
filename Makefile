# graphkit developer tasks. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check graphkit tests scripts
	$(BIN)/ruff format --check graphkit tests scripts
	$(BIN)/mypy graphkit
	@# bandit warns once per line of a multi-line statement annotated with nosec: drop that noise.
	@out=$$($(BIN)/bandit -q -c pyproject.toml -r graphkit 2>&1); rc=$$?; \
		printf '%s\n' "$$out" | grep -v 'but no failed test' | grep . ; exit $$rc

# The whole mission, offline: a fresh virtual environment, then graphkit's own walkthrough.
demo:
	rm -rf $(VENV)
	$(MAKE) install
	$(BIN)/graphkit demo

# Every scripts/bench_*.py (even after one misses its target); writes docs/BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python scripts/run_benchmarks.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
