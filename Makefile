# Two commands for a fresh clone: `make demo` (the whole workflow on this machine)
# and `make test`. Both build the virtualenv from nothing the first time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo local test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml functions/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r functions/requirements.txt -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/tgrelay demo

local: setup
	$(BIN)/tgrelay local

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n auto --dist loadfile

lint: setup
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks (README: Benchmarks): scripts that print tables, not tests. A few minutes.
.PHONY: bench
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -r functions/requirements.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/cost.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache
