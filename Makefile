# AgentMem Stream — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Java and Maven (Kafka), Prometheus (and promtool): Debian's packages, installed with
# apt-get when missing and we are root on a Debian-like system; otherwise a clear
# message. Go 1.24+ cannot come from Debian (too old): only checked.
APT_NEEDS := java:openjdk-17-jre-headless mvn:maven prometheus:prometheus promtool:prometheus

prereqs: ## install Java, Maven and Prometheus with apt-get when missing; check Python and Go
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "prereqs: Python 3.11+ is needed as $(PY) (make PY=python3.12 ...)" >&2; exit 1; }
	@missing=(); for pair in $(APT_NEEDS); do \
	  command -v "$${pair%%:*}" >/dev/null || missing+=("$${pair#*:}"); done; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  pkgs=$$(printf '%s\n' "$${missing[@]}" | sort -u | tr '\n' ' '); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "prereqs: apt-get install $$pkgs"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q && apt-get install -y -q --no-install-recommends $$pkgs; \
	  else \
	    echo "prereqs: missing $$pkgs; install them (Debian/Ubuntu: sudo apt-get install $$pkgs)" >&2; \
	    exit 1; \
	  fi; \
	fi
	@if ! command -v go >/dev/null; then \
	  echo "prereqs: no Go toolchain on PATH; building Weaviate needs Go 1.24+ (go.dev/dl), unless it is already in the cache" >&2; \
	elif ! printf '%s\n' go1.24 "$$(go env GOVERSION)" | sort -C -V; then \
	  echo "prereqs: $$(go env GOVERSION) is too old to build Weaviate; install Go 1.24+ (go.dev/dl)" >&2; exit 1; \
	fi

setup: prereqs $(STAMP) ## prerequisites, .venv with the project, then Kafka jars, Weaviate, Prometheus, the model pack and the local LLM (runtime and 0.5B model)
	$(BIN)/agentmem stack build

up: setup ## start the local stack (Kafka, Weaviate, Prometheus)
	$(BIN)/agentmem stack up

down: ## stop the local stack
	@test -x $(BIN)/agentmem && $(BIN)/agentmem stack down || true

status: ## health, port and pid of each stack component
	$(BIN)/agentmem stack status

demo: setup ## bring the stack up and run the demo
	$(BIN)/agentmem demo

demo-llm: setup ## the demo with intelligent mode on a local Qwen2.5-Coder model (stack up --llm)
	$(BIN)/agentmem demo --llm

test: setup ## run unit and integration tests against the real local stack
	$(BIN)/pytest tests/unit tests/integration --durations=25

unit: setup ## run the unit tests only (no services)
	$(BIN)/pytest tests/unit

lint: $(STAMP) ## ruff (lint + format check), mypy strict, import layers (import-linter), dependencies (deptry)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

fmt: setup ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup ## benchmarks against the local stack (ratios to same-run baselines); writes bench-results.json
	$(BIN)/agentmem stack up
	$(BIN)/loadgen bench

dashboards: setup ## regenerate the Grafana dashboards from dashboards/panels.py
	$(BIN)/python -m dashboards.generate

clean-state: down ## stop the stack and delete its data (.stack/, or AGENTMEM_STACK_DIR)
	@dir=$$($(BIN)/python -c 'from streams.settings import Settings; print(Settings().stack_dir)') && \
	  test -n "$$dir" && echo "rm -rf $$dir" && rm -rf "$$dir"

.PHONY: help prereqs setup up down status demo demo-llm test unit lint fmt bench dashboards clean-state
