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

setup: $(STAMP) ## create .venv, install the project, fetch/build Kafka, Weaviate, Prometheus and the model pack
	$(BIN)/agentmem stack build

up: setup ## start the local stack (Kafka, Weaviate, Prometheus)
	$(BIN)/agentmem stack up

down: ## stop the local stack
	@test -x $(BIN)/agentmem && $(BIN)/agentmem stack down || true

status: ## health, port and pid of each stack component
	$(BIN)/agentmem stack status

demo: setup ## bring the stack up and run the demo
	$(BIN)/agentmem demo

test: setup ## run unit and integration tests against the real local stack
	$(BIN)/pytest tests/unit tests/integration

unit: setup ## run the unit tests only (no services)
	$(BIN)/pytest tests/unit

lint: setup ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: setup ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup ## benchmarks against the local stack (ratios to same-run baselines); writes bench-results.json
	$(BIN)/agentmem stack up
	$(BIN)/loadgen bench

dashboards: setup ## regenerate the Grafana dashboards from dashboards/generate.py
	$(BIN)/python dashboards/generate.py

clean-state: down ## stop the stack and delete its data (.stack/)
	rm -rf .stack

.PHONY: help setup up down status demo test unit lint fmt bench dashboards clean-state
