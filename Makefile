# One Makefile for set-up, the platform, checks, tests and benchmarks. The README and .ci/run use it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROTOS := $(wildcard protos/faas/v1/*.proto)

.PHONY: install system-deps run proto proto-check lint format typecheck test test-unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

## Debian packages the tests use: a real Prometheus server and a headless Chromium with its
## driver (for the dashboard). Installed as root when missing; elsewhere the tests that need
## them say why they skip (and fail instead under CI=true).
SYSTEM_PACKAGES := prometheus chromium chromium-driver
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; \
	else echo "not root (or no apt-get): not installing$$missing; the tests that need them skip"; fi

## Start the whole platform (embedded Redis unless REDIS_URL is set). Ctrl-C stops it.
run: $(STAMP)
	$(PY) -m services.launcher $(ARGS)

## Regenerate the committed stubs in sdk/faas/v1 from protos/.
proto: $(STAMP)
	rm -f sdk/faas/v1/*_pb2*.py sdk/faas/v1/*_pb2*.pyi
	PATH="$(abspath $(BIN)):$$PATH" $(PY) -m grpc_tools.protoc -I protos \
		--python_out=sdk --grpc_python_out=sdk --mypy_out=quiet:sdk --mypy_grpc_out=quiet:sdk $(PROTOS)
	rm -f sdk/faas/v1/common_pb2_grpc.py sdk/faas/v1/common_pb2_grpc.pyi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/buf format -w

typecheck: $(STAMP)
	$(BIN)/mypy

## Everything CI runs: static checks, then unit, integration and fault tests.
test: $(STAMP) system-deps
	$(MAKE) lint
	$(MAKE) typecheck
	$(BIN)/pytest tests

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

## The benchmark suite (~10-15 min on 2 cores; `make bench ARGS=--quick` for a ~3 min smoke run):
## installs the bench extra (Celery, Ray, matplotlib, profilers), writes benchmarks/results/<time>/.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[server,dev,bench]'
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .faas-data .pytest_cache .mypy_cache .ruff_cache
