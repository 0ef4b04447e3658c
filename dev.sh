#!/usr/bin/env bash
# One entry point for a fresh machine with only Python 3.11:
#   ./dev.sh demo   set everything up, write the demo inbox, run the demo night (as-of 2024-12-20)
#   ./dev.sh test   set everything up, run the test suite (pytest)
# The virtualenv lives in .venv and is (re)built whenever pyproject.toml or requirements.lock change.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

stamp=.venv/.installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> setting up .venv (pinned dependencies from requirements.lock)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c requirements.lock -e '.[test]'
  echo "$want" > "$stamp"
fi
export PREFECT_SERVER_ANALYTICS_ENABLED=false

cmd=${1:-demo}; shift || true
case "$cmd" in
  demo)
    .venv/bin/ocop demo-data --inbox data/inbox
    exec .venv/bin/ocop run --inbox data/inbox --warehouse warehouse --as-of 2024-12-20 "$@" ;;
  test)
    exec .venv/bin/python -m pytest "$@" ;;
  *)
    echo "usage: ./dev.sh demo|test [args]" >&2; exit 2 ;;
esac
