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
	k8s/ambassador/base/app lab)

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
# make demo: git, Apache, PostgreSQL; the workshop's tests also run promtool.
DEMO_SYSTEM_PACKAGES := git:git apache2:apache2 \
	postgresql:/usr/lib/postgresql/*/bin/postgres postgresql-client:psql
WORKSHOP_SYSTEM_PACKAGES := $(DEMO_SYSTEM_PACKAGES) prometheus:promtool
SYSTEM_PACKAGES += $(WORKSHOP_SYSTEM_PACKAGES)
# make test-containers: rootful podman (runc), debootstrap for the stand-in
# base images, git for the repository the sidecar pod syncs from.
CONTAINERS_SYSTEM_PACKAGES := podman:podman runc:runc debootstrap:debootstrap git:git

.PHONY: help setup venv system-packages test test-sidecar test-ambassador lint format bench-sidecar \
	bench-ambassador clean
.PHONY: test-adapter bench-adapter
.PHONY: test-workshop demo images kind-up kind-down
.PHONY: test-containers

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
	@echo
	@echo "The workshop (docs/README.md):"
	@echo "make demo           all three patterns as local processes, no cluster needed (Ctrl-C stops)"
	@echo "make test-workshop  manifests, images and make targets checked without a cluster"
	@echo "make test-containers  build the images, play the pods under podman, check them (root)"
	@echo "make images         build the three images (CONTAINER_ENGINE=docker|podman), tagged $(VERSION)"
	@echo "make kind-up        create a kind cluster ($(KIND_CLUSTER)), build and load the images"
	@echo "make deploy-P       deploy pattern P (see below); GIT_REPO=URL for the git ones,"
	@echo "                    AMBASSADOR_ENV=dev|prod for the ambassador"
	@echo "make verify-P       check in the cluster what the guide says you should see (PASS/FAIL)"
	@echo "make undeploy-P     remove pattern P"
	@echo "make kind-down      delete the kind cluster"
	@echo "  P is one of: $(WORKSHOP_PATTERNS)"

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

test-workshop: venv
	@scripts/ensure-system-packages $(WORKSHOP_SYSTEM_PACKAGES)
	$(BIN)/pytest $(PYTEST_ARGS) tests/workshop

# Not part of `make test`: it needs root and podman, and takes minutes.
# TEST_CONTAINERS_OPTIONS: e.g. --base-images=official, --pattern=adapter, --keep.
TEST_CONTAINERS_OPTIONS ?=
test-containers: venv
	@scripts/ensure-system-packages $(CONTAINERS_SYSTEM_PACKAGES)
	$(BIN)/python -m lab.containers $(TEST_CONTAINERS_OPTIONS)

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

# ---- The workshop: local demo, images, a kind cluster, the patterns -------
# The project version: every image is tagged with it (never :latest).
VERSION := 0.1.0
# docker when the machine has it, else podman; CONTAINER_ENGINE=podman forces it.
CONTAINER_ENGINE ?= $(shell if command -v docker >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null 2>&1; then echo podman; else echo docker; fi)
BASE_IMAGE ?= python:3.12-slim
# Fully qualified, so podman does not file them under localhost/.
IMAGE_REPOSITORY ?= docker.io/sidecar-patterns
# image name:folder of its Dockerfile (built from the repository root)
IMAGES := gitpoll:sidecar-gitpoll httpd-adapter:adapter-metrics pg-ambassador:ambassador-db
IMAGE_REFS := $(foreach image,$(IMAGES),$(IMAGE_REPOSITORY)/$(firstword $(subst :, ,$(image))):$(VERSION))
KIND ?= kind
KUBECTL ?= kubectl
KIND_CLUSTER ?= sidecar-patterns
# kind v0.29's Kubernetes 1.33 (native sidecars are GA there).
KIND_NODE_IMAGE ?= kindest/node:v1.33.1
WORKSHOP_PATTERNS := init-container sidecar sidecar-classic adapter ambassador prometheus
GIT_REPO ?=
AMBASSADOR_ENV ?= dev
export KIND KUBECTL CONTAINER_ENGINE
ifneq (,$(findstring podman,$(CONTAINER_ENGINE)))
export KIND_EXPERIMENTAL_PROVIDER := podman
endif

demo: venv
	@scripts/ensure-system-packages $(DEMO_SYSTEM_PACKAGES)
	@PYTHONPATH=tests $(BIN)/python -m lab.demo

images:
	@$(PYTHON) -m lab.preflight engine --target $@
	$(foreach image,$(IMAGES),$(CONTAINER_ENGINE) build \
		--file $(lastword $(subst :, ,$(image)))/Dockerfile \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--tag $(IMAGE_REPOSITORY)/$(firstword $(subst :, ,$(image))):$(VERSION) . &&) true

kind-up:
	@$(PYTHON) -m lab.preflight kind engine --target $@
	@if $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
		echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else \
		$(KIND) create cluster --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE) --wait 120s; \
	fi
	@$(MAKE) --no-print-directory images
	@archive=$$(mktemp --suffix=.tar) && \
		$(CONTAINER_ENGINE) save --output $$archive $(IMAGE_REFS) && \
		$(KIND) load image-archive --name $(KIND_CLUSTER) $$archive; \
		status=$$?; rm -f $$archive; exit $$status
	@echo "kind cluster $(KIND_CLUSTER) is ready with the images; next: make deploy-sidecar"

kind-down:
	@$(PYTHON) -m lab.preflight kind --target $@
	$(KIND) delete cluster --name $(KIND_CLUSTER)

DEPLOY_OPTIONS = --ambassador-env $(AMBASSADOR_ENV) $(if $(GIT_REPO),--git-repo '$(GIT_REPO)')

$(addprefix deploy-,$(WORKSHOP_PATTERNS)): deploy-%:
	@$(PYTHON) -m lab.cluster deploy $* $(DEPLOY_OPTIONS)

$(addprefix verify-,$(WORKSHOP_PATTERNS)): verify-%:
	@$(PYTHON) -m lab.cluster verify $*

$(addprefix undeploy-,$(WORKSHOP_PATTERNS)): undeploy-%:
	@$(PYTHON) -m lab.cluster undeploy $* --ambassador-env $(AMBASSADOR_ENV)

.PHONY: $(foreach action,deploy verify undeploy,$(addprefix $(action)-,$(WORKSHOP_PATTERNS)))
