"""Shared test fixtures.

* ``tiny_model_dir``: the ``tiny-random`` model (2-layer random Llama with the SmolLM2
  tokenizer and chat template) as a ``save_pretrained`` directory, built once into the srjudge
  cache (``$SRJUDGE_CACHE`` or ``~/.cache/srjudge``; the build is atomic, so parallel test runs
  are safe) and reused by later sessions.
* ``shared_data``: ``$SRJUDGE_DATA``, else ``<repo>/../shared/data`` (staged benchmark files,
  found the same way as ``evaluation.benchmarks.SHARED_DATA``); tests using it are skipped
  when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get(
        "SRJUDGE_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    )
)


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    from srjudge.models import resolve_model

    return resolve_model("tiny-random")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
