"""Helpers for the hostile-input tests (``tests/test_harden_*.py``): example rows, a byte-exact
snapshot of a folder, and a CLI call that returns (exit status, stderr).

    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, "judge", "--input", ...)
    assert snapshot(tmp_path) == before      # every file byte for byte, and no new file
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from srjudge import cli

RUBRIC = {"criteria": "Is it helpful?", "score_descriptions": ["no", "poor", "ok", "good", "top"]}
MOCK = ("--backend", "mock", "--model", "m", "--mock-output", "Fine. [RESULT] 4")


def point(i: int | str, **fields: Any) -> dict[str, Any]:
    """A valid pointwise example row (``fields`` override or add keys)."""
    return {
        "kind": "pointwise",
        "id": f"p{i}" if isinstance(i, int) else i,
        "context": [{"role": "user", "content": f"What is {i}+{i}?"}],
        "response": "It is 4.",
        "rubric": RUBRIC,
        "gold_score": 4,
        **fields,
    }


def write_rows(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (FIFOs and folders by kind), by relative path."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_fifo():
            out[key] = "<fifo>"
        elif p.is_dir():
            out[key] = "<dir>"
        else:
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(capsys, *argv: Any) -> tuple[int, str]:
    """``srjudge ARGV`` in this process: (exit status, stderr); argparse exits count too."""
    rc, _, err = run_cli_full(capsys, *argv)
    return rc, err


def run_cli_full(capsys, *argv: Any) -> tuple[int, str, str]:
    """``srjudge ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err
