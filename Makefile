# Trading AI Secure — every entry point a developer, CI or devops needs.
# `make run` and `make test` work on a fresh machine with Python 3.11+.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_PACKAGES := $(wildcard libs/*/pyproject.toml) $(wildcard services/*/pyproject.toml)
LOCAL_PACKAGE_DIRS := $(patsubst %/pyproject.toml,%,$(LOCAL_PACKAGES))
LOCAL_DISTRIBUTIONS := $(foreach dir,$(LOCAL_PACKAGE_DIRS),tai-$(notdir $(dir)))
PYTEST_FLAGS ?=

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.lock $(LOCAL_PACKAGES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@scripts/lock-extract uv < requirements.lock > $(VENV)/uv-requirement.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(VENV)/uv-requirement.txt
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation $(foreach dir,$(LOCAL_PACKAGE_DIRS),-e $(dir))
	@touch $@

.PHONY: install
install: $(STAMP) ## Create .venv from requirements.lock and install every local package

.PHONY: lock
lock: ## Re-resolve requirements.lock (needs a package index)
	@command -v uv >/dev/null || $(PYTHON) -m pip install --quiet uv
	uv pip compile requirements.in --quiet --generate-hashes --no-emit-index-url \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		$(foreach dist,$(LOCAL_DISTRIBUTIONS),--no-emit-package $(dist)) \
		--custom-compile-command "make lock" -o requirements.lock

.PHONY: run
run: $(STAMP) ## Run the whole system embedded (in-memory bus, SQLite, bundled data, console on :8050)
	$(BIN)/trading-ai run

.PHONY: services
services: ## Start RabbitMQ, PostgreSQL and Redis on this machine if they are down
	@scripts/ensure-services

.PHONY: test-deps
test-deps: ## Install the browser the console tests drive (Debian chromium + chromium-driver)
	@scripts/ensure-chromium

.PHONY: contracts
contracts: $(STAMP) ## Regenerate proto/ from the event schemas
	$(BIN)/trading-ai contracts proto

.PHONY: test
test: $(STAMP) services test-deps ## Set up and run the whole suite (unit, contract, integration, e2e, browser, short chaos)
	$(BIN)/python -m pytest $(PYTEST_FLAGS)

.PHONY: test-unit
test-unit: $(STAMP) ## Run only the fast, pure unit tests
	$(BIN)/python -m pytest tests/unit tests/contract $(PYTEST_FLAGS)

.PHONY: lint
lint: $(STAMP) ## ruff, mypy, import-linter, bandit; pip-audit (loudly skipped when offline)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bandit -c pyproject.toml -r libs services -q
	$(BIN)/python scripts/audit-dependencies --when-unreachable skip requirements.lock

.PHONY: audit
audit: $(STAMP) ## pip-audit requirements.lock; fails on a vulnerability or an unreachable service
	$(BIN)/python scripts/audit-dependencies requirements.lock

.PHONY: format
format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: bench-optimizer
bench-optimizer: $(STAMP) ## Optuna trials per minute for a fixed study, beside a single backtest
	$(BIN)/python bench/optimizer_bench.py

.PHONY: clean
clean: ## Remove the virtual environment, caches and local data
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache test-artifacts

# ---- deployment and observability (k8s/, deploy/, docker-compose.yml) --------------------
COMPOSE_ENV_FILE ?= deploy/secrets/compose.env

.PHONY: k8s-validate
k8s-validate: $(STAMP) ## Render every kustomize overlay; check schemas (strict) and security policy (checkov)
	scripts/k8s-validate

.PHONY: compose-validate
compose-validate: $(STAMP) ## Validate docker-compose.yml with Docker Compose's own loader (no engine needed)
	scripts/compose-validate

.PHONY: up
up: ## Build and start the stack with docker compose (secrets from $(COMPOSE_ENV_FILE), see .env.example)
	@test -f $(COMPOSE_ENV_FILE) || { echo "copy .env.example to $(COMPOSE_ENV_FILE) and fill it in"; exit 1; }
	docker compose --env-file $(COMPOSE_ENV_FILE) up --detach --build

.PHONY: down
down: ## Stop the compose stack (volumes are kept)
	docker compose --env-file $(COMPOSE_ENV_FILE) down
# ---- end of deployment and observability -------------------------------------------------

# ---- proof under load, faults and attack (tests/chaos, tests/fuzz, tests/security, bench/) --
.PHONY: bench
bench: $(STAMP) services ## Run every benchmark; print tables; write bench/results.json
	scripts/bench

.PHONY: chaos
chaos: $(STAMP) services ## Full chaos suite: 5,000 bars, every fault, ledger vs fault-free run
	TAI_CHAOS_FULL=1 $(BIN)/python -m pytest tests/chaos $(PYTEST_FLAGS)

.PHONY: chaos-short
chaos-short: $(STAMP) services ## The short chaos form that `make test` also runs
	$(BIN)/python -m pytest tests/chaos $(PYTEST_FLAGS)
# ---- end of proof under load, faults and attack -----------------------------------------
