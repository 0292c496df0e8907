# mnist-pipeline: `make run` builds the environment from uv.lock and runs the retrain flow once;
# `make test` runs the linters and the whole test suite (what .ci/run calls).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION ?= 0.13.9
# use an installed uv when there is one; otherwise bootstrap a private copy from PyPI
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen
ARGS ?=

.PHONY: run test lint unit bench bench-quick env clean-store help serve
.DEFAULT_GOAL := help

help:
	@echo "make run    - build the environment and run the retrain flow once on the embedded default store"
	@echo "make test   - linters (ruff, mypy) and the whole test suite"
	@echo "make bench  - full benchmark on ../shared/data/mnist (not part of make test)"
	@echo "make serve  - a local Prefect server (SQLite) and the deployments served from this machine; prints the UI address"

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $@

env: .venv/.synced

run: env
	$(RUN) mnist-pipeline run --sample $(ARGS)

lint: env
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

test: lint
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(RUN) pytest $(ARGS)

unit: env
	$(RUN) pytest tests/unit tests/data $(ARGS)

bench: env
	$(RUN) python bench/train_bench.py $(ARGS)

bench-quick: env
	$(RUN) python bench/train_bench.py --quick $(ARGS)

# a local Prefect server with its embedded SQLite database, then `mnist-pipeline serve` against it (Ctrl-C stops both)
PREFECT_PORT ?= 4200
serve: env
	$(RUN) python -m deployments.local --port $(PREFECT_PORT) $(ARGS)

clean-store:
	rm -rf data/store
