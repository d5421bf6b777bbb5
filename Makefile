# Two commands do all the set-up: `make demo` and `make test`. Each bootstraps .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The tests that run on every core at once (pytest-xdist), and how.
IN_PARALLEL := not e2e and not chaos
XDIST := -n auto

.PHONY: demo test lint unit chaos faults airflow bench clean browser screenshots test-oldest demo-oldest services

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet -e ".[test]"
	@touch $@

# The oldest Airflow minor pyproject.toml declares ("apache-airflow>=3.1" -> 3.1.*, its newest patch), in its own venv.
OLDEST_AIRFLOW := $(shell sed -n 's/.*"apache-airflow>=\([0-9.]*[0-9]\).*/\1/p' pyproject.toml).*
OLDEST := .venv-oldest
$(OLDEST)/.installed: pyproject.toml
	@test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	@$(OLDEST)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(OLDEST)/bin/uv pip install --python $(OLDEST)/bin/python --compile-bytecode --quiet \
		"apache-airflow==$(OLDEST_AIRFLOW)" -e ".[test]"
	@touch $@

## The fast tests and the demo on the oldest declared Airflow minor.
# pytest exits 5 when the selection holds no test: a run that tested nothing fails, and says so.
test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest -m "$(IN_PARALLEL)" $(XDIST) $(PYTEST_ARGS) || { status=$$?; [ $$status -ne 5 ] || \
		echo "test-oldest: pytest selected no tests, nothing was tested on Airflow $(OLDEST_AIRFLOW)" >&2; exit $$status; }

demo-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m airflow_provider_consentio.demo --workdir .demo-oldest

## The example pipelines against the local sandbox, end to end, with a summary.
demo: $(STAMP)
	$(BIN)/python -m airflow_provider_consentio.demo

## Lint, types, and the whole test suite (unit, sandbox, DAGs, scheduler end-to-end, chaos, crash safety).
# Two passes: everything but the end-to-end and chaos tests on every core, then those one at a time (each starts
# a whole Airflow, or prints its line of figures, which a pytest-xdist worker would swallow).
test: $(STAMP) lint browser services
	$(BIN)/python -m pytest -m "$(IN_PARALLEL)" $(XDIST) $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m "e2e or chaos" $(PYTEST_ARGS)

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

## The fast loop: no metadata database, no process but pytest's (the sandbox runs in it); a few minutes at most.
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not chaos and not integration" $(XDIST) --hypothesis-profile=fast $(PYTEST_ARGS)

## The chaos run alone, with its line of figures (CONSENTIO_CHAOS_INTERVALS=55 covers all the seeded days).
chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos -s -q $(PYTEST_ARGS)

## The infrastructure faults test at full scale: 10,000 orders a day, a 7-day backfill per scenario, a line of figures
# each (tests/e2e/test_infrastructure_faults.py; `make test` runs it at a scale that fits CI).
FAULTS_ORDERS_PER_DAY ?= 10000
FAULTS_DAYS ?= 7
faults: $(STAMP) services
	CONSENTIO_FAULTS_ORDERS_PER_DAY=$(FAULTS_ORDERS_PER_DAY) CONSENTIO_FAULTS_DAYS=$(FAULTS_DAYS) \
		$(BIN)/python -m pytest tests/e2e/test_infrastructure_faults.py -q $(PYTEST_ARGS)

## airflow standalone with the sandbox, to watch runs in the UI (http://127.0.0.1:8280, admin/admin).
airflow: $(STAMP)
	$(BIN)/python -m airflow_provider_consentio.demo --standalone

## Chromium and chromedriver from Debian for the browser test and the screenshots (quick when present; needs root).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "Not root: install chromium and chromium-driver for the browser test (it skips without them)."; fi

## The README's pictures of the Airflow UI (docs/screenshots/*.png), from a real run against the sandbox.
screenshots: $(STAMP) browser
	PYTHONPATH=tests $(BIN)/python -m harness.screenshots --out docs/screenshots

## The benchmarks quoted in the issue notes.
bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_sandbox_rate.py
	$(BIN)/python tests/benchmarks/bench_export.py
	$(BIN)/python tests/benchmarks/bench_purchase_needs.py
	$(BIN)/python tests/benchmarks/bench_catalogue.py
	$(BIN)/python tests/benchmarks/bench_sql_transfer.py

clean:
	rm -rf $(VENV) $(OLDEST) .demo .demo-oldest .airflow .pytest_cache .mypy_cache .ruff_cache
