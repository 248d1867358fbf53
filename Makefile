# Everyday commands. `make run` starts the demo hub; `make test` runs everything CI runs;
# `make bench` runs the benchmarks (docs/benchmarks.md).
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test lint chromium clean-state bench

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[demo,test]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(VENV)/.installed node_modules/.installed

# The demo hub on http://127.0.0.1:8000 with state in ./state (first run prints a setup link).
run: install
	PATH="$(BIN):$$PATH" $(BIN)/jupyterhub -f jupyterhub_config.py

chromium:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

lint: install
	$(BIN)/ruff check .

test: install chromium lint
	PATH="$(BIN):$$PATH" $(BIN)/pytest

clean-state:
	rm -rf state

bench: install
	@command -v wrk >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk)
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.login_load
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.tokens --rounds 3
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.annotations
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.hardening
