# podling developer workflow. Everything is idempotent; run as root on Debian 12.
PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= /var/lib/podling
# busybox-static: the offline busybox image (make up imports it, with nginx from .debs that
# `apt-get download` keeps in $(DATA_DIR)/offline/debs; the nginx package is never installed)
APT_RUNTIME := python3-venv ca-certificates curl sqlite3 runc conmon catatonit containernetworking-plugins iptables busybox-static
APT_TEST := docker-registry kubectx kubecolor kubetail etcd-server etcd-client
BIN := $(VENV)/bin

.PHONY: install install-test up down test unit e2e lint bench clean

## install: Debian packages and the venv with podling in it
install: $(BIN)/podling
	@./scripts/apt-install $(APT_RUNTIME)

$(BIN)/podling: pyproject.toml
	@./scripts/apt-install $(APT_RUNTIME)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

## install-test: what the tests need on top
install-test: install
	@[ -z "$(APT_TEST)" ] || ./scripts/apt-install $(APT_TEST)
	$(BIN)/pip install -q -e '.[test]'

## up: install, import the offline busybox and nginx images, then start podling in the
## background (logs: $(DATA_DIR)/server.log)
up: install
	@./scripts/podling-up $(BIN)/podling $(DATA_DIR)

## down: stop the background podling started by `make up`
down:
	@./scripts/podling-down $(DATA_DIR)

## test: the layering check, mypy, then the whole suite (unit, conformance, e2e with the real kubectl)
test: install-test
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

unit: install-test
	$(BIN)/pytest -q tests/unit tests/conformance

e2e: install-test
	$(BIN)/pytest -q tests/e2e

bench: install-test
	$(BIN)/python bench/apiserver_bench.py

clean:
	rm -rf $(VENV) *.egg-info
