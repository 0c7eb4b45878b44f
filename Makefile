# Lambda revenue platform: the front door. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

# One set of settings for every command (see docs/configuration.md); override on the command line.
export LAMBDA_HOME := $(CURDIR)
export LAMBDA_STATE_DIR ?= $(CURDIR)/.local/state
export LAMBDA_JARS_DIR ?= $(CURDIR)/.local/jars
export LAMBDA_REDIS_PASSWORD_FILE ?= $(LAMBDA_STATE_DIR)/secrets/redis-password
export LAMBDA_PUSHGATEWAY_URL ?= http://localhost:9091

# CLUSTER=1: the same targets on distributed engines on this machine (docs/cluster.md): three Kafka
# brokers, a Flink and a Spark standalone cluster, Redis Cluster, an S3 object store.
CLUSTER ?=
ifeq ($(CLUSTER),1)
include infra/cluster/cluster.env
export $(shell sed -n 's/^\(LAMBDA_[A-Z0-9_]*\)=.*/\1/p' infra/cluster/cluster.env)
endif
CLUSTER_FLAG := $(if $(filter 1,$(CLUSTER)),--cluster)

VENVS := $(CURDIR)/.venvs
TOOLS := $(VENVS)/tools/bin
PYTEST_ARGS ?=

.PHONY: help setup lock up down reset status test test-unit lint

# Each layer's own targets (make speed, make batch, make serve, ...) live in mk/<layer>.mk.
include $(sort $(wildcard mk/*.mk))

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install everything: system packages, Python environments, JVM jars (idempotent)
	@scripts/setup.sh

lock: ## re-resolve every project's uv.lock (after changing a pyproject.toml; layers lock tools too)
	@for p in tools speed_layer batch_layer serving_layer; do
	  (cd $$p && UV_PYTHON_DOWNLOADS=never UV_PYTHON=python3.11 python3.11 -m uv lock -q) && echo "locked $$p"
	done

up: setup ## start Kafka (9092), Redis (6379), Prometheus (9090), Pushgateway (9091); CLUSTER=1: the cluster (docs/cluster.md)
	@$(TOOLS)/lambda-services up $(CLUSTER_FLAG)

down: ## stop exactly the services `make up` started (with the cluster and `make serve CLUSTER=1`'s replicas)
	@[ -x $(TOOLS)/lambda-services ] && $(TOOLS)/lambda-services down || true

reset: ## stop the services and wipe all local state (topics, Redis, Delta tables, checkpoints)
	@[ -x $(TOOLS)/lambda-services ] && $(TOOLS)/lambda-services reset || rm -rf $(LAMBDA_STATE_DIR)

status: ## show which local services are running (the cluster's too)
	@$(TOOLS)/lambda-services status

test: up ## every test: unit, integration against the real services, end to end
	@scripts/test.sh $(PYTEST_ARGS)

test-unit: setup ## unit tests only (no services needed)
	@scripts/test.sh -m unit $(PYTEST_ARGS)

# Test suites and bench scripts as env:folder, each in the environment that runs it (scripts/test.sh).
# mypy checks them one folder at a time: every suite has its own conftest.py, and one run would
# take two same-named modules for a duplicate.
LINT_SUITES := \
  tools:tests/contract tools:tests/tools tools:tests/infra tools:tests/observability \
  tools:tests/k8s tools:tests/bench \
  speed:tests/speed speed:speed_layer/bench \
  batch:tests/batch batch:batch_layer/bench \
  serving:tests/serving serving:tests/e2e serving:tests/faults/serving serving:tests/faults/pipeline serving:tests/cluster \
  serving:serving_layer/bench

lint: setup ## ruff on the repo; mypy on every package, test suite and bench folder
	@$(TOOLS)/ruff check . && $(TOOLS)/ruff format --check .
	for env in tools speed batch serving; do
	  # The test kit is checked where its extras (Kafka, Redis, Delta, Arrow) are installed.
	  pkg=$$([ $$env = tools ] && echo "contract/src tools/src" || echo "$${env}_layer/src")
	  [ $$env = serving ] && pkg="$$pkg testkit/src"
	  $(VENVS)/$$env/bin/mypy $$pkg || exit 1
	done
	for suite in $(LINT_SUITES); do
	  env=$${suite%%:*} dir=$${suite#*:}
	  echo "mypy $$dir ($$env)"
	  $(VENVS)/$$env/bin/mypy $$dir || exit 1
	done
