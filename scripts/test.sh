#!/usr/bin/env bash
# Sets everything up, then runs the test suite (slow tests excluded; `scripts/test.sh -m slow`
# runs them). Extra arguments go to pytest. Set-up includes Debian's chromium + chromium-driver
# for the annotation page's browser test (scripts/install_browser.sh; needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_browser.sh
exec .venv/bin/python -m pytest "$@"
