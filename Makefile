# Two commands do all the set-up: `make run` and `make test` (`make proof`: the long proofs).
SHELL := /bin/bash
include $(dir $(lastword $(MAKEFILE_LIST)))tools/python.mk
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
export SAM_CLI_TELEMETRY := 0

.PHONY: run test proof lint typecheck pytest browser bench clean

# Every dependency at the version and hash of requirements.lock (tools/lock.py writes it).
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON_CHECK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## make run: the whole exchange on http://127.0.0.1:$(PORT) with a demo vendor and partners
run: $(STAMP)
	$(BIN)/pingpost serve --port $(PORT) --seed demo/seed.json

## make test: lint, types, and every test suite (unit, integration, end-to-end, SAM build), the
## long proofs in their short form (the delivery proof with 200 leads, each AWS call faulted once)
test: lint typecheck pytest

## make proof: the long proofs in their long form (the delivery proof with 1,000 leads, every AWS
## call of every step faulted with every kind of fault)
proof: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest --proof -m proof $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collects no test: that fails the run like any other non-zero code.
# The tests run in TEST_WORKERS processes (pytest-xdist), one test at a time each, the long
# ones first; most of them wait on sockets, so there are more workers than cores. pytest lists
# the slowest, so that a test that grows is seen.
TEST_WORKERS ?= 4
PYTEST_ARGS = -n $(TEST_WORKERS) --dist load --maxschedchunk 1 --durations=15
pytest: $(STAMP) browser
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

# The web form's browser tests drive Debian's Chromium. Where it is missing and this runs as
# root with apt-get, it is installed; without it those tests fail, unless they are opted out
# by name: `make test SKIP_BROWSER=1` (pytest's summary then lists them as skipped).
browser:
	@[ -n "$(filter-out 0,$(SKIP_BROWSER))" ] || command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] \
	  || ! command -v apt-get >/dev/null \
	  || apt-get install -y -q --no-install-recommends chromium >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
	  || echo "Chromium could not be installed: the browser tests will fail (SKIP_BROWSER=1 skips them)"

## make bench: every benchmark, as docs/performance.md reports them
bench: $(STAMP)
	$(BIN)/python bench/matching.py --sizes 100 10000 100000 --rounds 200
	$(BIN)/python bench/decoding.py --rounds 200
	$(BIN)/python bench/leadtypes.py --rounds 2000
	$(BIN)/python bench/init.py --rounds 15 --instructions
	$(BIN)/python bench/cost.py --pairs 50
	$(BIN)/python bench/warm.py --rounds 300
	$(BIN)/python bench/partners.py --sizes 10000 100000 --changed 10
	$(BIN)/python bench/scale.py --sizes 100 100000 --leads 40
	$(BIN)/python bench/memory.py --requests 200
	$(BIN)/python bench/auction.py --sizes 1 10 50 --rounds 30
	$(BIN)/python bench/auction.py --sizes 1 10 50 --rounds 30 --buyers demo
	$(BIN)/python bench/bids_item.py --auctions 200

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
