# imu-har: make run (start the system) and make test (run the whole suite) are all you need.
VENV    ?= .venv
PY      := $(VENV)/bin/python
HAR     := $(VENV)/bin/har
STAMP   := $(VENV)/.installed
PYTHON  ?= python3
ARGS    ?=

.PHONY: run test test-fast check lint typecheck venv system system-test firmware-test model bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev]'
	@touch $(STAMP)

venv: $(STAMP)

system:
	@scripts/bootstrap-system.sh

system-test:
	@scripts/bootstrap-system.sh --test

## Start the whole system with simulated wearables (Ctrl-C stops it).
run: venv system
	$(HAR) up $(ARGS)

## Run the whole test suite (unit, broker integration, TensorFlow, browser, firmware).
test: venv system-test
	$(PY) -m pytest $(ARGS)

## The inner loop: pure cores and broker tests, no TensorFlow, no browser, no slow system runs.
test-fast: venv system
	$(PY) -m pytest -m "not tf and not browser and not slow" -n 2 -q $(ARGS)

## Lint and type-check.
check: lint typecheck

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check imu_har services training tests bench

typecheck: venv
	$(VENV)/bin/mypy

## Rebuild the shipped demo model from simulator data (reproducible).
model: venv
	$(PY) -m training.default_model --out models/default

## Run the benchmarks (see docs/benchmarks.md); needs ../shared/datasets for training.
bench: venv system
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
