# Two commands do all the set-up: `make demo` and `make test`. Each bootstraps .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint unit chaos airflow bench clean services

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet -e ".[test]"
	@touch $@

## The example pipelines against the local sandbox, end to end, with a summary.
demo: $(STAMP)
	$(BIN)/python -m airflow_provider_consentio.demo

## Lint, types, and the whole test suite (unit, sandbox, DAGs, scheduler end-to-end, chaos, crash safety).
test: $(STAMP) lint services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Postgres and Redis (Debian packages) for the distributed end-to-end test; quick when already installed.
services:
	@if command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
			postgresql redis-server >/dev/null; \
	else echo "services: cannot install postgresql and redis-server (not root, or no apt-get);" \
		"the distributed test will say why it skipped"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Everything but the slow end-to-end and chaos tests.
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not chaos" $(PYTEST_ARGS)

## The chaos run alone, with its line of figures (CONSENTIO_CHAOS_INTERVALS=55 covers all the seeded days).
chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos -s -q $(PYTEST_ARGS)

## airflow standalone with the sandbox, to watch runs in the UI (http://127.0.0.1:8280, admin/admin).
airflow: $(STAMP)
	$(BIN)/python -m airflow_provider_consentio.demo --standalone

## The benchmarks quoted in the issue notes.
bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_sandbox_rate.py
	$(BIN)/python tests/benchmarks/bench_export.py
	$(BIN)/python tests/benchmarks/bench_purchase_needs.py
	$(BIN)/python tests/benchmarks/bench_dag_parse.py

clean:
	rm -rf $(VENV) .demo .airflow .pytest_cache .mypy_cache .ruff_cache
