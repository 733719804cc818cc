# The two commands a new machine needs (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint bench setup clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

## Local broker + worker + sample multi-channel traffic; prints the handoffs.
demo: $(STAMP)
	$(BIN)/handoff demo

## The test suite (unit, contract and end-to-end through a real Kafka broker), then lint.
test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .
	$(BIN)/mypy handoff schemas streams steps

## Also the slow fault-injection runs.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

## Benchmarks against a local broker (README "Performance"); BENCH_ARGS=--quick for a small run.
bench: $(STAMP)
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .handoff-data .pytest_cache .mypy_cache .ruff_cache
