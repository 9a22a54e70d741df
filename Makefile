# DEIA Bot Controller. `make run` starts the control plane on embedded defaults;
# `make test` installs and starts PostgreSQL and Redis, then lints and runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | md5sum | cut -c1-12)

# Where the tests find their services; override to run two suites side by side (two Redis
# databases and two port ranges apart: each `make test` uses a pair). `make test` runs two
# shards at once (scripts/test_shards.py), the second on the _B database, Redis database and
# port range; PYTEST_ARGS runs one pytest on the first set instead.
TEST_DB ?= deia
TEST_REDIS_DB ?= 0
TEST_BOT_PORTS ?= 18001-18199
# The second shard's follow the first's: the next Redis database, the port range just above.
TEST_DB_B ?= $(TEST_DB)_b
TEST_REDIS_DB_B ?= $(shell echo $$(( ($(TEST_REDIS_DB) + 1) % 16 )))
TEST_BOT_PORTS_B ?= $(shell r=$(TEST_BOT_PORTS); a=$${r%-*}; b=$${r#*-}; echo $$((b + 2))-$$((2 * b - a + 2)))
# test_env(database, redis database, bot ports)
test_env = DATABASE_URL=postgres://deia:deia@127.0.0.1:5432/$(1) \
	REDIS_URL=redis://127.0.0.1:6379/$(2) \
	SECRET_KEY=test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz \
	DEIA_VAR_DIR=$(CURDIR)/var/test-$(1) \
	BOT_PORT_RANGE=$(3) \
	DEIA_FAST_PASSWORD_HASHER=true LOG_LEVEL=WARNING DEBUG=false
TEST_ENV = $(call test_env,$(TEST_DB),$(TEST_REDIS_DB),$(TEST_BOT_PORTS))
TEST_ENV_B = $(call test_env,$(TEST_DB_B),$(TEST_REDIS_DB_B),$(TEST_BOT_PORTS_B))
# The two shards, about even in time (pytest --durations=0): the second takes these parts of
# tests/integration, the first everything else (so a new test lands in one of them). What a
# test finds by simulated host name alone stays together (lifecycle, hosts, chat, runner).
SHARD_B = tests/integration/lifecycle tests/integration/hosts tests/integration/chat \
	tests/integration/runner tests/integration/observability tests/integration/console \
	tests/integration/authz tests/integration/security tests/integration/pgbouncer \
	tests/integration/test_suite_parts.py
SHARD_A = tests $(addprefix --ignore=,$(SHARD_B))
# The unit tests need no service: no DATABASE_URL, REDIS_URL or CELERY_BROKER_URL gives the
# embedded defaults (an in-memory SQLite test database, the local-memory cache, the file broker).
UNIT_VAR_DIR ?= $(CURDIR)/var/test-unit
UNIT_ENV = -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL \
	SECRET_KEY=test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz \
	DEIA_VAR_DIR=$(UNIT_VAR_DIR) BOT_PORT_RANGE=$(TEST_BOT_PORTS) \
	DEIA_FAST_PASSWORD_HASHER=true LOG_LEVEL=WARNING DEBUG=false
PYTEST_ARGS ?=
# Writes the project's bytecode once. Where PYTHONDONTWRITEBYTECODE is set (this machine's
# shells set it), each Python process would otherwise compile every module of ours it imports,
# 0.15 to 0.2 s of CPU per start, and a test run starts hundreds (runners, workers,
# manage.py). A stale .pyc is never used: Python checks the source's mtime and size.
BYTECODE = $(PY) -m compileall -q bots deia ops tests bench

.PHONY: help venv run setup test test-unit lint format bench screenshots clean

help:
	@echo "make run    - start web, worker and beat on embedded defaults (Ctrl-C stops all)"
	@echo "make test   - start PostgreSQL and Redis (installing them if needed), lint, run all tests"
	@echo "make test-unit - run the unit tests alone: no PostgreSQL, Redis or lint, in seconds"
	@echo "make bench  - run the benchmarks and write docs/PERFORMANCE.md"
	@echo "make screenshots - refresh the README's screenshots (docs/screenshots/) from the browser tests"
	@echo "make format - apply ruff's formatting and safe fixes"

$(STAMP): requirements.txt requirements-dev.txt
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "installing python3-venv"; apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

run: venv
	@scripts/run.sh

setup: venv
	$(PY) manage.py setup

test: venv
	DB_NAME=$(TEST_DB) scripts/services.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(BYTECODE)
	env $(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run >/dev/null
ifeq ($(strip $(PYTEST_ARGS)),)
	DB_NAME=$(TEST_DB_B) scripts/services.sh >/dev/null
	$(PY) scripts/test_shards.py var/test-shards \
	  -- env $(TEST_ENV) $(PY) -m pytest $(SHARD_A) \
	  -- env $(TEST_ENV_B) $(PY) -m pytest $(SHARD_B)
else
	env $(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)
endif

# Without the schemathesis and hypothesis plugins (only the e2e API contract uses them): two
# seconds of imports saved.
test-unit: venv
	$(BYTECODE)
	env $(UNIT_ENV) $(PY) -m pytest -p no:schemathesis -p no:hypothesispytest tests/unit $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports --no-cache

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: venv
	DB_NAME=$(TEST_DB) scripts/services.sh
	@command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
	$(BYTECODE)
	env $(TEST_ENV) $(PY) bench/run.py $(BENCH)

# The browser tests marked `screenshots` write var/artefacts/screenshots/*.png on every run;
# this runs only those and copies their PNGs to docs/screenshots/, which the README shows.
screenshots: venv
	DB_NAME=$(TEST_DB) scripts/services.sh
	rm -rf var/artefacts/screenshots
	env $(TEST_ENV) $(PY) -m pytest -m screenshots tests/e2e $(PYTEST_ARGS)
	install -D -m 0644 -t docs/screenshots var/artefacts/screenshots/*.png

clean:
	rm -rf var/test-* .pytest_cache
