#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver when either is missing: the browser test of
# the annotation page (tests/test_annotate_browser.py) drives them through Selenium. Needs
# root (or sudo) and an apt source; .ci/run calls it on a fresh machine.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
  chromium chromium-driver
