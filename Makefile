# Flu outbreak monitor — developer entry points. `make` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# Debian packages the local pipeline and its tests need (installed when root, named otherwise).
SYSTEM_PACKAGES := postgresql-15 chromium graphviz

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml requirements/dev.lock
	@test -x $(UV) || ($(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --disable-pip-version-check uv)
	$(UV) pip sync --quiet --python $(BIN)/python requirements/dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the project virtualenv (.venv) from requirements/dev.lock

.PHONY: lock
lock: ## Re-resolve requirements/dev.lock from pyproject.toml
	@test -x $(UV) || ($(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet uv)
	$(UV) pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

.PHONY: system-deps
system-deps: ## Check (as root: install) the Debian packages the local pipeline needs
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)

.PHONY: demo
demo: venv system-deps ## Run the whole pipeline locally (Kafka, PostgreSQL, simulator, dashboard)
	$(BIN)/flu-monitor up

.PHONY: test
test: venv system-deps ## Run every test (unit, real Kafka/PostgreSQL, templates, functions, browser)
	$(BIN)/pytest

.PHONY: lint
lint: venv ## Static checks: Python, SQL, templates, IAM policies
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

.PHONY: bench
bench: venv system-deps ## Run the benchmarks and record results under bench/results/
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

.PHONY: clean
clean: ## Remove local state, build output and caches (keeps .venv)
	rm -rf .state .aws-sam build test-artifacts .pytest_cache
