# Sidecar Patterns: one Makefile for the whole monorepo.
#   make test      set everything up (venv, system packages) and run all tests
#   make lint      ruff check, ruff format --check, mypy
#   make test-sidecar / bench-sidecar   one service at a time

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

PACKAGES := common sidecar-gitpoll ambassador-db adapter-metrics
TYPED_SOURCES := $(wildcard common/src sidecar-gitpoll/src ambassador-db/src adapter-metrics/src tests bench \
	k8s/ambassador/base/app)

# package:command pairs; the package is installed when the command is missing.
SIDECAR_SYSTEM_PACKAGES := git:git apache2:apache2 openssh-server:sshd openssh-client:ssh
ADAPTER_SYSTEM_PACKAGES := apache2:apache2 prometheus:prometheus prometheus:promtool \
	prometheus-apache-exporter:prometheus-apache-exporter openssl:openssl
# PostgreSQL's server programs are not on PATH: ensure-system-packages looks
# for a command given as a path pattern where the pattern points.
AMBASSADOR_SYSTEM_PACKAGES := postgresql:/usr/lib/postgresql/*/bin/postgres \
	postgresql-client:psql openssl:openssl
AMBASSADOR_BENCH_PACKAGES := pgbouncer:pgbouncer haproxy:haproxy
SYSTEM_PACKAGES := $(SIDECAR_SYSTEM_PACKAGES) $(AMBASSADOR_SYSTEM_PACKAGES)
SYSTEM_PACKAGES += $(ADAPTER_SYSTEM_PACKAGES)

.PHONY: help setup venv system-packages test test-sidecar test-ambassador lint format bench-sidecar \
	bench-ambassador clean
.PHONY: test-adapter bench-adapter

help:
	@echo "make test           run every test (sets up .venv and system packages first)"
	@echo "make test-sidecar   only the gitpoll tests"
	@echo "make test-adapter   only the httpd-adapter tests"
	@echo "make test-ambassador  only the pg-ambassador tests"
	@echo "make lint           ruff check, ruff format --check, mypy"
	@echo "make format         apply ruff's formatting and safe fixes"
	@echo "make bench-sidecar  gitpoll benchmark: table on stdout, JSON in bench/results/"
	@echo "make bench-adapter  httpd-adapter vs apache_exporter: table on stdout, JSON in bench/results/"
	@echo "make bench-ambassador  pg-ambassador vs direct, PgBouncer, HAProxy (pgbench)"
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

test-adapter: venv
	@scripts/ensure-system-packages $(ADAPTER_SYSTEM_PACKAGES)
	$(BIN)/pytest $(PYTEST_ARGS) tests/adapter

test-ambassador: venv
	@scripts/ensure-system-packages $(AMBASSADOR_SYSTEM_PACKAGES)
	$(BIN)/pytest $(PYTEST_ARGS) tests/ambassador

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

bench-adapter: venv
	@scripts/ensure-system-packages $(ADAPTER_SYSTEM_PACKAGES)
	$(BIN)/python bench/adapter.py

bench-ambassador: venv
	@scripts/ensure-system-packages $(AMBASSADOR_SYSTEM_PACKAGES) $(AMBASSADOR_BENCH_PACKAGES)
	$(BIN)/python bench/ambassador.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
