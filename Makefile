# Flu outbreak monitor — developer entry points. `make` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# Debian packages the local pipeline and its tests need (installed when root, named otherwise).
SYSTEM_PACKAGES := postgresql-15 chromium graphviz openjdk-17-jre-headless maven

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml requirements/dev.lock
	@test -x $(UV) || ($(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --disable-pip-version-check uv)
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python requirements/dev.lock
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

# FLU_MONITOR_REQUIRE_ALL=1: a test whose tool is missing fails instead of skipping (tests/conftest.py).
.PHONY: test
test: venv system-deps tools ## Run every test (unit, real Kafka/PostgreSQL, templates, functions, browser), with coverage
	FLU_MONITOR_REQUIRE_ALL=1 $(BIN)/pytest --cov --cov-report=term:skip-covered

.PHONY: test-fast
# One worker more than cores: while a test waits (a subprocess starting, a timeout it proves, a
# webhook), the spare worker keeps the cores busy (2 cores, five pairs back to back: -n 3 never
# slower than -n 2, 3.6 s less on average; -n 4 slower; docs/testing.md).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
# tests/e2e (the whole pipeline: Kafka in every test) is not even collected: each worker would
# import and rewrite it only to deselect it (~0.4 CPU-s a worker).
test-fast: venv ## Tests without Kafka, browser, tool venvs or the slow mark, on every core plus one (40-57 s on 2 idle cores: docs/testing.md); a missing PostgreSQL or Graphviz skips, named
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not kafka and not browser and not tools and not slow" --ignore=tests/e2e

.PHONY: test-e2e-under-load
test-e2e-under-load: venv system-deps ## Run the end-to-end tests again with a busy loop per core competing for the CPU
	scripts/under-load $(BIN)/pytest -q -p no:cacheprovider tests/e2e

.PHONY: lint
lint: venv lint-templates ## Static checks: Python (ruff, mypy), SQL, templates, IAM policies
	$(BIN)/ruff check src tests functions bench scripts
	$(BIN)/ruff format --check src tests functions bench scripts
	$(BIN)/mypy
	$(BIN)/python scripts/lint_sql.py

# ----------------------------------------------------------- AWS deployment package (docs/deploy.md)
# sam-cli, checkov and taskcat cannot share one environment: each gets a pinned venv under .tools/.
TOOLS := .tools
TOOL_NAMES := sam-cli checkov taskcat
SAM := $(TOOLS)/sam-cli/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
TASKCAT := $(TOOLS)/taskcat/bin/taskcat
TEMPLATES := template.yaml nested/network.yaml nested/streaming.yaml nested/events.yaml nested/connect.yaml \
	nested/warehouse.yaml nested/dashboards.yaml nested/alerts.yaml
# Commercial Regions where CloudFormation offers every resource type the templates use.
AWS_REGIONS := us-east-1 us-east-2 us-west-2 ca-central-1 sa-east-1 eu-west-1 eu-west-2 eu-west-3 \
	eu-central-1 eu-central-2 eu-north-1 eu-south-1 eu-south-2 il-central-1 af-south-1 ap-south-1 \
	ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-5 ap-northeast-1 ap-northeast-2
export SAM_CLI_TELEMETRY := 0
export SAM_CLI_DISABLE_TELEMETRY := 1

$(TOOLS)/%/.installed: requirements/tools/%.lock | $(VENV)/.installed
	rm -rf $(TOOLS)/$*
	$(UV) venv --quiet --python $(PYTHON) $(TOOLS)/$*
	$(UV) pip sync --quiet --python $(TOOLS)/$*/bin/python $<
	@touch $@

.PHONY: tools
tools: $(foreach t,$(TOOL_NAMES),$(TOOLS)/$(t)/.installed) ## Create the pinned sam-cli, checkov and taskcat venvs under .tools/

.PHONY: lock-tools
lock-tools: ## Re-resolve requirements/tools/*.lock from requirements/tools/*.in
	cd requirements/tools && for t in $(TOOL_NAMES); do ../../$(UV) pip compile --quiet --python-version 3.11 $$t.in -o $$t.lock || exit 1; done

.PHONY: diagram
diagram: venv system-deps ## Redraw docs/architecture.png from docs/architecture.py
	$(BIN)/python docs/architecture.py

.PHONY: render
render: venv ## Render connector/ into nested/connect.yaml
	$(BIN)/python scripts/render_connector.py

.PHONY: lint-templates
lint-templates: venv tools ## cfn-lint, sam validate --lint, checkov, parliament and taskcat lint on every template
	$(BIN)/python scripts/render_connector.py --check
	$(BIN)/cfn-lint $(TEMPLATES) --regions $(AWS_REGIONS) --include-checks I
	printf '%s\n' $(TEMPLATES) | xargs -P 3 -I{} $(SAM) validate --lint -t {}
	$(CHECKOV) $(addprefix -f ,$(TEMPLATES)) --framework cloudformation --skip-download --compact --quiet
	$(BIN)/python scripts/lint_iam_policies.py $(TEMPLATES)
	$(TASKCAT) lint

# make preflight REGION=us-east-1 [CONFIG_ENV=production] [PARAMS="ClusterType=serverless ..."]
.PHONY: preflight
preflight: venv ## Read-only check of a Region and the parameters before a deploy (your AWS credentials)
	$(BIN)/flu-monitor aws preflight --region "$(REGION)" $(if $(CONFIG_ENV),--config-env "$(CONFIG_ENV)") \
		$(if $(PARAMS),--parameter-overrides "$(PARAMS)")

.PHONY: build
build: venv tools ## sam build every function (offline) into .aws-sam/build
	$(SAM) build --template-file template.yaml --build-dir .aws-sam/build

# make publish BUCKET=my-assets [REGIONS="us-east-1 eu-west-1"] [DRY_RUN=1]: templates and code go to
# s3://$(BUCKET)-<region>/flu-monitor/<version>/ in each Region; prints Launch Stack URLs.
.PHONY: publish
publish: build ## Package for regional buckets <BUCKET>-<region> and print Launch Stack URLs
	$(BIN)/python scripts/publish.py --build-dir .aws-sam/build --bucket "$(BUCKET)" \
		--regions $(or $(REGIONS),$(AWS_REGIONS)) $(if $(DRY_RUN),--dry-run)

.PHONY: screenshot
screenshot: venv system-deps ## Retake docs/dashboard.png (the README screenshot) with the end-to-end browser test
	FLU_MONITOR_UPDATE_SCREENSHOT=1 $(BIN)/pytest -q tests/e2e/test_dashboard_e2e.py

.PHONY: bench
bench: venv system-deps ## Run the benchmarks and record results under bench/results/
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

.PHONY: clean
clean: ## Remove local state, build output and caches (keeps .venv)
	rm -rf .state .aws-sam build dist test-artifacts .pytest_cache .coverage
