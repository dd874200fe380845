#!/usr/bin/env bash
# Installs what the tests need (Python deps pinned by constraints.txt into .venv, the npm SDKs
# pinned by tests/js/package-lock.json, the Kinesis-API server moto) and runs lint, types and
# the test suite. Usage: ./tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
if [ -f tests/js/package.json ]; then
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check streamer store ingest loadtest tests
echo "== mypy"; mypy
echo "== pytest"; pytest -q "$@"
