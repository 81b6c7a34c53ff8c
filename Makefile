# Everything a fresh machine needs, from the project's own files: a virtualenv with the project in it.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_WORKERS ?= 2

.PHONY: setup run test dev doctor sandbox bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Test tools from the npm registry (Azurite, the Azure Storage emulator), as package-lock.json pins them.
NPM_STAMP := node_modules/.installed-$(shell cat package-lock.json | sha1sum | cut -c1-12)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

setup: $(STAMP) $(NPM_STAMP)

## The main job, sync_to_ipaas: extract every Business Central web service, map it and load it into iPaaS.com
## (the sandbox when no credentials are set).
run: setup
	$(VENV)/bin/bc-pipeline run

## The tests, end-to-end included, against the HTTPS sandbox; the state database on SQLite and PostgreSQL (a
## throwaway cluster of this run's own: a new folder and a free port unless BC_PIPELINE_PG_DIR / _PORT are set).
test: setup
	scripts/test-redis.sh install
	scripts/test-chromium.sh install
	scripts/test-postgres.sh run $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -q

## The Dagster UI on http://127.0.0.1:3000 with this project's DAGSTER_HOME.
dev: setup
	$(VENV)/bin/bc-pipeline dev

doctor: setup
	$(VENV)/bin/bc-pipeline doctor

sandbox: setup
	$(VENV)/bin/bc-pipeline sandbox

bench: setup
	$(PY) -m pip install --quiet -e ".[test,bench]"
	$(PY) benchmarks/extract_vs_dlt.py

clean:
	rm -rf .bc_pipeline
