# Everyday commands. `make run` starts the demo hub; `make test` runs everything CI runs;
# `make bench` runs the benchmarks (docs/benchmarks.md).
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test test-jupyterhub5 test-python313 lint chromium clean-state bench

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

# Tests run in one pytest-xdist worker per core, a file per worker at a time
# (docs/testing.md); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile

test: install chromium lint
	PATH="$(BIN):$$PATH" $(BIN)/pytest $(PYTEST_PARALLEL)

# The other versions CI proves (README, "Supported versions"), each in a venv of its own:
# the end-to-end suite on the latest JupyterHub 5.x, the unit suite on Python 3.13.
JUPYTERHUB5 := jupyterhub>=5,<6
PYTHON313 ?= $(firstword $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.13*/bin/python3))

test-jupyterhub5: node_modules/.installed chromium
	$(PYTHON) -m venv .venv-jupyterhub5
	.venv-jupyterhub5/bin/pip install --quiet --upgrade pip
	.venv-jupyterhub5/bin/pip install --quiet -e ".[demo,test]" "$(JUPYTERHUB5)"
	PATH="$(CURDIR)/.venv-jupyterhub5/bin:$$PATH" .venv-jupyterhub5/bin/pytest $(PYTEST_PARALLEL) -m e2e

test-python313:
	@test -n "$(PYTHON313)" || (echo "No Python 3.13 found: pyenv install 3.13, or make PYTHON313=/path/to/python3.13" && exit 1)
	$(PYTHON313) -m venv .venv-python313
	.venv-python313/bin/pip install --quiet --upgrade pip
	.venv-python313/bin/pip install --quiet -e ".[test]"
	PATH="$(CURDIR)/.venv-python313/bin:$$PATH" .venv-python313/bin/pytest $(PYTEST_PARALLEL) -m "not e2e"

clean-state:
	rm -rf state

bench: install
	@command -v wrk >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk)
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.login_load
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.tokens --rounds 3
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.annotations
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.hardening
	PATH="$(BIN):$$PATH" $(BIN)/python -m bench.queue
