#!/usr/bin/env bash
# Sets everything up, then runs the test suite (slow tests excluded; `scripts/test.sh -m slow`
# runs them). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
