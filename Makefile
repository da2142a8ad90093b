# Two commands do everything: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The real stack the second half of `make test` runs on (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/marketplace
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: run test test-embedded test-real lint venv demo bench bench-full migrate clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	@touch $(STAMP)

venv: $(STAMP)

migrate: venv
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py ensure_staff
	$(BIN)/python manage.py serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

lint: venv
	$(BIN)/ruff check .

test: lint test-embedded test-real

# Embedded defaults: SQLite, in-memory channel layer, sandbox.
test-embedded: venv
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest $(PYTEST_ARGS)

# The production stack: PostgreSQL + Redis. Fails loudly (never skips) when they are unreachable.
test-real: venv
	$(BIN)/python scripts/check_services.py "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" \
	  MARKETPLACE_REQUIRE_REAL_STACK=1 $(BIN)/pytest $(PYTEST_ARGS)

demo: venv
	$(BIN)/python scripts/demo.py --base-url $${BASE_URL:-http://127.0.0.1:8000}

bench: venv
	bench/run.sh

# The issues' full sizes (1M listings, 5,000 sockets, 100k deadlines; about an hour).
bench-full: venv
	bench/run.sh --full

clean:
	rm -rf var/ .pytest_cache .ruff_cache
