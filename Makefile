# One command surface for people and CI (.ci/run calls `make test`).
#   make up      install what is needed and start the whole system (Ctrl-C stops it)
#   make test    install what is needed and run lint, type checks and every test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-packages up up-detached status down test lint typecheck unit integration format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages some tests use: chromium (console browser tests, driven by Playwright with
# executable_path; never a browser download), nginx (config check, gateway bench) and
# prometheus (promtool tests of the alert rules, the real-Prometheus test, `up --observability`).
# Installed when missing and running as root; otherwise those tests skip and say why.
system-packages:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1 \
	    || ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nginx-light prometheus >/dev/null; \
	  else echo "chromium/nginx/prometheus missing and not root: their tests will be skipped"; fi; \
	fi

up: install
	$(BIN)/sensor-backend up $(ARGS)

up-detached: install
	$(BIN)/sensor-backend up --detach $(ARGS)

status: install
	$(BIN)/sensor-backend status

down: install
	$(BIN)/sensor-backend down

lint: install
	$(BIN)/ruff check src tests bench services
	$(BIN)/ruff format --check src tests bench services

typecheck: install
	$(BIN)/mypy src

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

test: lint typecheck system-packages
	$(BIN)/pytest

format: install
	$(BIN)/ruff format src tests bench services
	$(BIN)/ruff check --fix src tests bench services

bench: install
	$(BIN)/python bench/breaker_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
