# Sidecar Patterns: one Makefile for the whole monorepo.
#   make test      set everything up (venv, system packages) and run all tests
#   make lint      ruff check, ruff format --check, mypy
#   make test-sidecar / bench-sidecar   one service at a time

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

PACKAGES := common sidecar-gitpoll
TYPED_SOURCES := $(wildcard common/src sidecar-gitpoll/src tests bench)

# package:command pairs; the package is installed when the command is missing.
SIDECAR_SYSTEM_PACKAGES := git:git apache2:apache2 openssh-server:sshd openssh-client:ssh
SYSTEM_PACKAGES := $(SIDECAR_SYSTEM_PACKAGES)

.PHONY: help setup venv system-packages test test-sidecar lint format bench-sidecar clean

help:
	@echo "make test           run every test (sets up .venv and system packages first)"
	@echo "make test-sidecar   only the gitpoll tests"
	@echo "make lint           ruff check, ruff format --check, mypy"
	@echo "make format         apply ruff's formatting and safe fixes"
	@echo "make bench-sidecar  gitpoll benchmark: table on stdout, JSON in bench/results/"
	@echo "make clean          remove .venv and caches"

$(VENV)/.installed: requirements-dev.txt $(wildcard */pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt $(addprefix -e ,$(PACKAGES))
	touch $@

venv: $(VENV)/.installed

system-packages:
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)

setup: venv system-packages

# pytest exits 5 when it collected no tests; make treats that as the failure it is.
test: setup
	$(BIN)/pytest $(PYTEST_ARGS) tests

test-sidecar: venv
	@scripts/ensure-system-packages $(SIDECAR_SYSTEM_PACKAGES)
	$(BIN)/pytest $(PYTEST_ARGS) tests/sidecar

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(TYPED_SOURCES)

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-sidecar: venv
	@scripts/ensure-system-packages $(SIDECAR_SYSTEM_PACKAGES)
	$(BIN)/python bench/sidecar.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
