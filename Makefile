# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.deepscope-installed
PYTEST_ARGS ?=

.PHONY: demo test install lint typecheck pytest bench chromium clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml hatch_build.py src/deepscope/analysis/weights/_halfstats.c $(wildcard frontend/package-lock.json) $(shell find frontend/src -type f 2>/dev/null)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	# pytorch-grad-cam is a test-only oracle; --no-deps keeps it from replacing torch
	$(BIN)/pip install --no-deps 'grad-cam>=1.5'
	touch $(STAMP)

install: $(STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	  { echo "installing Debian chromium for the browser tests"; \
	    (apt-get update -q && apt-get install -y -q chromium) >/dev/null || \
	    { echo "could not install chromium: run 'apt-get install chromium' as root"; exit 1; }; }
	@command -v pdftoppm >/dev/null 2>&1 || \
	  { echo "installing Debian poppler-utils (pdftoppm renders the PDF figures in the tests)"; \
	    (apt-get update -q && apt-get install -y -q poppler-utils) >/dev/null || \
	    { echo "could not install poppler-utils: run 'apt-get install poppler-utils' as root"; exit 1; }; }

demo: install
	$(BIN)/deepscope demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

pytest: install chromium
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	for b in benchmarks/*_bench.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/deepscope/server/static/app frontend/node_modules
