# Quarterdeck: `make demo` runs it, `make test` checks it. Both set up everything first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

# Local defaults live in scripts/env.sh (sourced by every recipe that runs Python).
ENV := . scripts/env.sh &&

MANAGE := $(ENV) DJANGO_SETTINGS_MODULE=config.settings.production $(PY) manage.py
MANAGE_TEST := $(ENV) DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py

.PHONY: help demo test setup venv infra migrate seed serve lint typecheck migrations-check pytest \
        bench-journal bench-budgets bench-db-floor bench-runtime bench-approvals bench-vault bench-memory clean

help:
	@echo "make demo   set everything up and run the portal with a demo workspace"
	@echo "make test   set everything up and run the quality gates and the test suite"

# --- set-up ------------------------------------------------------------------------------
$(BIN)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v -i warning || true
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v -i warning || true
	@$(PY) -c "import django, rest_framework, django_tenants, channels, daphne" \
		|| { echo "python dependencies failed to install"; exit 1; }
	@touch $@

venv: $(BIN)/.installed

infra:
	@scripts/infra.sh all

setup: venv infra

migrate: setup
	@$(MANAGE) migrate_schemas --noinput -v 0

seed: migrate
	@$(MANAGE) seed_demo

# --- the two commands -------------------------------------------------------------------------
demo: seed
	@$(MANAGE) collectstatic --noinput -v 0
	@$(ENV) scripts/run_demo.sh

test: setup
	@scripts/infra.sh browser
	@echo "== ruff" && $(BIN)/ruff check .
	@echo "== mypy" && $(ENV) $(BIN)/mypy apps config
	@echo "== migrations" && $(MANAGE_TEST) makemigrations --check --dry-run -v 1
	@echo "== pytest" && $(ENV) $(BIN)/pytest $(PYTEST_ARGS)

lint:
	@$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck:
	@$(ENV) $(BIN)/mypy apps config

# --- benchmarks (last line of output is JSON) -------------------------------------------------
bench-journal: migrate
	@$(MANAGE) bench_journal
bench-budgets: migrate
	@$(MANAGE) bench_budgets
bench-db-floor: migrate
	@scripts/bench_db_floor.sh
bench-runtime: migrate
	@$(MANAGE) bench_runtime
bench-approvals: migrate
	@$(MANAGE) bench_approvals
bench-vault: migrate
	@$(MANAGE) bench_vault
bench-memory: migrate
	@$(MANAGE) bench_memory

clean:
	rm -rf var .run/*.log
