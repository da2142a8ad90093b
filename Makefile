# Two commands do everything: `make run` and `make test` (see README.md).
SHELL := /bin/bash
# Python 3.12 (scripts/find_python.sh explains and fails when there is none).
PYTHON ?= $(shell scripts/find_python.sh)
VENV := .venv
BIN := $(VENV)/bin
# `make run` installs only the production set; `make test` the development set (a superset).
PROD_STAMP := $(VENV)/.installed-prod
DEV_STAMP := $(VENV)/.installed-dev

# The real stack the second half of `make test` runs on (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/marketplace
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# The embedded half runs on two pytest-xdist workers (one per core; PYTEST_WORKERS=0 for one).
# The real-stack half runs in one process: its race tests hold up to 50 pooled connections and
# its server tests start processes with pools of their own, and two such workers went past
# PostgreSQL's 100 connections (PoolTimeout in CI).
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

.PHONY: run test test-embedded test-real test-sdk sdk-deps lint typecheck venv venv-dev demo bench \
	bench-full migrate clean lock check-locks staging backup restore-drill messages catalogue

define install_lock
	@test -n "$(PYTHON)" || exit 1
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || \
	  { echo "ERROR: $(VENV) is not Python 3.12; remove it (rm -rf $(VENV)) and run make again" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(1)
endef

$(PROD_STAMP): requirements/prod.txt
	$(call install_lock,requirements/prod.txt)
	@touch $@

$(DEV_STAMP): requirements/dev.txt
	$(call install_lock,requirements/dev.txt)
	@touch $@ $(PROD_STAMP)

venv: $(PROD_STAMP)

venv-dev: $(DEV_STAMP)

# Both locks come from pyproject.toml; pins already in a lock are kept unless pyproject's ranges
# exclude them (`make lock UPGRADE=1` moves everything to the newest allowed).
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --python-version 3.12 --generate-hashes \
	--custom-compile-command "make lock" --quiet
lock: venv-dev
	$(UV_COMPILE) $(if $(UPGRADE),--upgrade,) -o requirements/prod.txt
	$(UV_COMPILE) $(if $(UPGRADE),--upgrade,) --extra dev -o requirements/dev.txt

# CI: the committed locks are what `make lock` would write from today's pyproject.toml.
check-locks: venv-dev
	@tmp=$$(mktemp -d); cp requirements/*.txt $$tmp/; \
	$(UV_COMPILE) -o $$tmp/prod.txt && $(UV_COMPILE) --extra dev -o $$tmp/dev.txt && \
	diff -u requirements/prod.txt $$tmp/prod.txt && diff -u requirements/dev.txt $$tmp/dev.txt \
	  || { echo "ERROR: requirements/ is out of date with pyproject.toml: run make lock" >&2; exit 1; }

migrate: venv
	$(BIN)/python manage.py migrate --noinput

# The translation catalogue compiled (locale/zh_Hans/LC_MESSAGES/django.mo, not committed): with
# gettext's msgfmt through Django when it is installed (.ci/run installs it), else by
# scripts/compile_messages.py, so a fresh machine needs nothing more for `make run`.
messages: venv
	@if command -v msgfmt >/dev/null; then \
	  $(BIN)/python manage.py compilemessages --ignore=.venv --ignore=sdk --ignore=var; \
	else $(BIN)/python scripts/compile_messages.py; fi

# After adding or changing user-visible text: the unmarked strings (project/i18n.py) regenerated,
# then makemessages merges every string into the catalogue; translate the new empty msgstr's.
catalogue: venv
	$(BIN)/python scripts/i18n_strings.py
	$(BIN)/python manage.py makemessages -l zh_Hans --no-location --ignore=.venv --ignore=sdk \
	  --ignore=tests --ignore=var --ignore=bench --ignore=sandbox --ignore=scripts --ignore=staticfiles

run: migrate messages
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py ensure_staff
	$(BIN)/python manage.py serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

lint: venv-dev
	$(BIN)/ruff check .

# Static types over the app packages (pyproject's [tool.mypy]: strict where ready).
typecheck: venv-dev
	$(BIN)/mypy

test: lint typecheck check-locks sdk-deps test-embedded test-real test-sdk

# Embedded defaults: SQLite, in-memory channel layer, sandbox.
test-embedded: venv-dev messages
	env -u DATABASE_URL -u REDIS_URL $(PYTEST) $(PYTEST_ARGS)

# The production stack: PostgreSQL + Redis. Fails loudly (never skips) when they are unreachable.
test-real: venv-dev messages
	$(BIN)/python scripts/check_services.py "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" \
	  MARKETPLACE_REQUIRE_REAL_STACK=1 $(BIN)/pytest $(PYTEST_ARGS)

# The SDK (sdk/, docs/sdk.md): its node_modules from the committed lock, reinstalled when the lock
# changed since the last install (npm writes node_modules/.package-lock.json on every install).
SDK_STAMP := sdk/node_modules/.package-lock.json
$(SDK_STAMP): sdk/package-lock.json
	cd sdk && npm ci --no-audit --no-fund
	@touch $@

sdk-deps: $(SDK_STAMP)

# Generated types up to date, the SDK and the example mini-program type-checked, built, and its
# suite run against a server it starts (embedded defaults, sandbox); then the server tests once
# more on PostgreSQL + Redis (a database of their own, created and dropped by the suite).
test-sdk: venv-dev sdk-deps
	cd sdk && env -u DATABASE_URL -u REDIS_URL npm test
	cd sdk && env -u DATABASE_URL -u REDIS_URL SDK_DATABASE_URL="$(TEST_DATABASE_URL)" \
	  SDK_REDIS_URL="$(TEST_REDIS_URL)" npx vitest run test/e2e.test.ts

demo: venv
	$(BIN)/python scripts/demo.py --base-url $${BASE_URL:-http://127.0.0.1:8000}

bench: venv-dev
	bench/run.sh

# The issues' full sizes (1M listings, 5,000 sockets, 100k deadlines; about an hour).
bench-full: venv-dev
	bench/run.sh --full

clean:
	rm -rf var/ .pytest_cache .ruff_cache sdk/dist

# The production layout from deploy/ behind a real nginx on this machine (scripts/staging.py):
# installs nginx when missing, starts gunicorn, daphne, Huey and nginx on loopback ports with a
# scratch database, plays the demo through the proxy, and stops everything it started.
STAGING_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
STAGING_REDIS_URL ?= redis://127.0.0.1:6379/14
staging: venv-dev
	$(BIN)/python scripts/staging.py --database-url "$(STAGING_DATABASE_URL)" \
	  --redis-url "$(STAGING_REDIS_URL)" $(STAGING_ARGS)

# PostgreSQL backups and the restore drill (docs/operations.md, "Backups and restores").
backup:
	scripts/backup $(BACKUP_ARGS)
# make restore-drill DUMP=/srv/marketplace/backups/marketplace-....dump
restore-drill: venv
	scripts/restore_drill "$(DUMP)" $(DRILL_ARGS)
