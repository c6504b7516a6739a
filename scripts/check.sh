#!/usr/bin/env bash
# The whole check, as CI runs it: format, lint, types, import contracts, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
bin=.venv/bin
echo "== ruff format --check"; "$bin/ruff" format --check .
echo "== ruff check";          "$bin/ruff" check .
echo "== mypy";                "$bin/mypy"
echo "== import contracts";    "$bin/lint-imports"
echo "== pytest";              "$bin/pytest" "$@"
