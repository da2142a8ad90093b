#!/usr/bin/env bash
# `make bench`: every benchmark under bench/, one table at the end (see bench/run.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/run.py "$@"
