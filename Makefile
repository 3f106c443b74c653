# The two commands: `make run` starts everything, `make test` passes the suite.
# Both create .venv and install the pinned requirements on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed

.PHONY: run test lint bench vendor clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

run: $(RUNTIME_STAMP)  ## start web, worker and scheduler (embedded Redis/Postgres unless URLs are set)
	$(BIN)/python -m webapp.launch

test: $(DEV_STAMP)  ## the whole suite against real Redis and Postgres (embedded unless TEST_*_URL)
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

bench: $(RUNTIME_STAMP)  ## tick, scanner tick, storage, stream, rules, webhook, chart, alerts-on-the-print and live-scanner benchmarks (JSON lines)
	$(BIN)/python -m bench.tick
	$(BIN)/python -m bench.tick --scanner 10000
	$(BIN)/python -m bench.storage
	$(BIN)/python -m bench.stream
	$(BIN)/python -m bench.tick --symbols 10000 --rules 1000
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.chart
	$(BIN)/python -m bench.realtime
	$(BIN)/python -m bench.scanner_live

vendor:  ## refresh static/vendor from the npm registry (versions in package.json)
	./tools/vendor.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
