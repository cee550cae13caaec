# make demo  - install into .venv (first time), then run the whole graph on data/sample
# make test  - install into .venv (first time), chromium and postgresql (apt-get) and azurite (npm), if missing, then run the test suite
# make lint  - ruff over the whole tree
# make ui    - the Dagster UI on http://127.0.0.1:3000 over the same instance as `make demo`

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE := $(VENV)/azurite/node_modules/.bin/azurite-blob

.PHONY: demo test test-deployment lint ui sample bench clean chromium postgresql

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# the machine's pip 23.2 crashes resolving this set (InconsistentCandidate)
	$(BIN)/pip install -q --upgrade pip
	# exactly the CPU build first, so nothing resolves to a CUDA torch
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlops-assets run

# three processes, a test module each at a time (its fixtures built once); most of the suite
# waits on servers, daemons and browsers, so three lanes keep two cores busy (four measured slower).
# Modules go out longest first (conftest.MODULE_SECONDS), not by their number of tests
test: $(STAMP) chromium postgresql $(AZURITE)
	$(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder

# the sensors through real daemons: the production deployment run as processes (docker-compose.yaml's
# services on a PostgreSQL it starts) and the loop's new week; about 7 minutes and 7 CPU-minutes on
# 2 cores, outside `make test`'s 10-minute budget
test-deployment: $(STAMP) postgresql
	$(BIN)/pytest -q -m deployment

# ruff (pyproject.toml: pyflakes, pycodestyle, import order, 120 columns); .ci/run runs it before the tests
lint: $(STAMP)
	$(BIN)/ruff check .

# the browser tests drive Debian's chromium through Playwright (its own browser download is not
# reachable here); installed with apt-get when missing (as root, or through sudo)
chromium:
	@command -v chromium >/dev/null || { S=$$([ "$$(id -u)" -ne 0 ] && echo sudo); \
	  $$S apt-get install -y -q chromium >/dev/null || { $$S apt-get update -q && $$S apt-get install -y -q chromium >/dev/null; }; }

# the postgres tests start a PostgreSQL server of their own (Debian's package, any version)
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { S=$$([ "$$(id -u)" -ne 0 ] && echo sudo); \
	  $$S apt-get install -y -q postgresql >/dev/null || { $$S apt-get update -q && $$S apt-get install -y -q postgresql >/dev/null; }; }

# the azure tests start Azurite, the Azure Storage emulator: 3.35.0 is the newest that runs on node 20
$(AZURITE):
	@command -v npm >/dev/null || { S=$$([ "$$(id -u)" -ne 0 ] && echo sudo); \
	  $$S apt-get install -y -q nodejs npm >/dev/null || { $$S apt-get update -q && $$S apt-get install -y -q nodejs npm >/dev/null; }; }
	npm install --prefix $(VENV)/azurite --silent --no-audit --no-fund azurite@3.35.0

ui: $(STAMP)
	$(BIN)/mlops-assets ui

# regenerate the bundled sample (its defaults are the documented ones)
sample: $(STAMP)
	$(BIN)/mlops-assets sample data/sample

bench: $(STAMP)
	$(BIN)/python bench/run_stages.py
	$(BIN)/python bench/run_stages.py --regions 14 --stores-per-region 200 --products 30 --weeks 156 --keep /tmp/mlops-seed
	$(BIN)/python bench/run_stages.py --keep /tmp/mlops-seed --increment
	$(BIN)/python bench/conditioning.py

clean:
	rm -rf .mlops
