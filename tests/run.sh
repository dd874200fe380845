#!/usr/bin/env bash
# Installs what the tests need (Python deps pinned by constraints.txt into .venv, the npm SDKs
# pinned by tests/js/package-lock.json, the Kinesis-API server moto) and runs lint, types and
# the test suite (Debian's chromium too, when run as root). Usage: ./tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
# The browser SDK test drives Debian's Chromium (no browser download): install it when missing.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (Debian package) for the browser SDK test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif [ "${CI:-}" = true ]; then
    echo "tests/run.sh: /usr/bin/chromium is missing and cannot be installed (not root)" >&2
    exit 1
  else
    echo "tests/run.sh: no /usr/bin/chromium; the browser SDK test will be skipped" >&2
  fi
fi
if [ -f tests/js/package.json ]; then
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check flagmodel bus store streamer ingest insights node loadtest tests
echo "== mypy"; mypy; mypy -p loadtest
echo "== pytest"; pytest -q "$@"
