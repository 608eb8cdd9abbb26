# crm-territory: the commands a newcomer needs. Every target installs what it uses.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
API_PORT ?= 8765
APP_PORT ?= 8501

.PHONY: install run dev app chromium test test-fast lint format bench screenshots clean help

help:
	@echo "make run    set up, then materialize every asset and check on the local CSV storage, print a summary"
	@echo "make test   set up, then run the whole test suite (unit + integration with real servers)"
	@echo "make test-fast  the unit tests only (under a minute): the loop while you work"
	@echo "make lint   ruff (lint + format check) and pyright (basic) on the package"
	@echo "make format ruff's fixes and formatting, in place"
	@echo "make dev    set up, then start the mock CRM API and the Dagster UI on http://127.0.0.1:3000"
	@echo "make app    the territory analytics web app (read-only) on http://127.0.0.1:$(APP_PORT) (APP_PORT=...)"
	@echo "make chromium  Debian's chromium for the browser tests (apt-get, where missing; make test runs it)"
	@echo "make screenshots  with make dev running: docs/images/*.png from a real browser (RUN_ID=<a run to show>)"
	@echo "make bench  issue 15 targets: the pipeline from 10k to 5M clients (wall time, peak RSS, pandas floor; 30-45 min)"
	@echo "make clean  remove caches and benchmark scratch (never data/: the territory registry lives there)"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# A local Dagster instance (runs, event logs, schedules) inside the repo, git-ignored: one run at a time
# (every job rewrites the same tables), telemetry off. crm_territory.cli writes the same file.
$(DAGSTER_HOME): install
	@$(PY) -c 'from pathlib import Path; from crm_territory.cli import ensure_dagster_home; ensure_dagster_home(Path("$(DAGSTER_HOME)"))'

run: install $(DAGSTER_HOME)
	$(PY) -m crm_territory.cli run --start-mock-api

# Debian's chromium for the browser tests and the screenshots, driven by Playwright (whose own browser download cannot
# work on a closed network). As root (CI) it is installed where missing; otherwise it must be there already.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

test: install chromium
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest crm_territory_tests/unit

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The mock API in the background (its own process group, stopped on exit), the UI in the foreground. The mock's
# write token (MOCK_CRM_WRITE_TOKEN, for python -m mock_api.change) goes to the mock only: the engine never writes.
dev: install $(DAGSTER_HOME)
	@set -m; \
	export CRM_API_TOKEN=$${CRM_API_TOKEN:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))')}; \
	export CRM_API_URL=http://127.0.0.1:$(API_PORT); \
	$(PY) -m mock_api --host 127.0.0.1 --port $(API_PORT) & api=$$!; \
	trap 'kill $$api 2>/dev/null' EXIT INT TERM; \
	env -u MOCK_CRM_WRITE_TOKEN $(VENV)/bin/dg dev --host 127.0.0.1 --port 3000

# The territory analytics app: read-only pages over the published tables (CRM_STORAGE, CRM_DATA_DIR as for a run),
# on 127.0.0.1 only, headless (no browser opened), no usage statistics sent.
app: install
	$(PY) -m streamlit run crm_territory/app/main.py --server.address 127.0.0.1 --server.port $(APP_PORT) \
		--server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer

bench: install
	$(PY) -m crm_territory_tests.benchmarks.bench

# Debian's chromium, driven by Playwright (its own browser download cannot work on a closed network).
screenshots: install chromium
	$(PY) -m crm_territory_tests.support.ui_screenshots http://127.0.0.1:3000 docs/images $(RUN_ID)

clean:
	rm -rf .bench .pytest_cache
