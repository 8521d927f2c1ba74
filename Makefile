# One command surface for people and CI (.ci/run calls `make test`).
#   make up      install what is needed and start the whole system (Ctrl-C stops it)
#   make test    install what is needed and run lint, type checks and every test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install up up-detached status down test lint typecheck unit integration format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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

test: lint typecheck
	$(BIN)/pytest

format: install
	$(BIN)/ruff format src tests bench services
	$(BIN)/ruff check --fix src tests bench services

bench: install
	$(BIN)/python bench/breaker_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
