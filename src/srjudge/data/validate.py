"""``validate_file``: check a data file, report every bad row, write good rows and a quarantine.

    report = validate_file("train.jsonl", "srjudge", "good.jsonl", "quarantine.jsonl")
    srjudge data validate train.jsonl --good good.jsonl --quarantine quarantine.jsonl

A quarantine line is ``{"file", "line", "field", "error", "raw"}`` (``quarantine_record``).
The output paths are checked before anything is read or written: an output that is the input,
``--good`` equal to ``--quarantine``, or an existing file that is not an examples (quarantine)
file is refused, and every file is left as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srjudge.data.readers import RowError
from srjudge.data.sources import load
from srjudge.paths import looks_like, refuse_foreign_file, refuse_same_paths
from srjudge.records import (
    write_jsonl,
)

EXAMPLE_KEYS = ("id", "kind", "context")
"""Keys every line of an srjudge examples file has (an output we may overwrite)."""
QUARANTINE_KEYS = ("file", "line", "field", "error", "raw")

# ---------------------------------------------------------------------------------------
# validation with quarantine


@dataclass
class ValidationReport:
    """Counts and errors of one validated file."""

    path: str
    fmt: str
    rows: int
    good: int
    errors: list[RowError]
    flags: dict[str, int] = field(default_factory=dict)
    warnings: list[RowError] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        flags = "".join(f", {k}: {v}" for k, v in sorted(self.flags.items()))
        warned = f", warnings: {len(self.warnings)}" if self.warnings else ""
        counts = f"rows: {self.rows}, good: {self.good}, bad: {self.bad}{flags}{warned}"
        return f"{self.path} [{self.fmt}]: {counts}"


def validate_file(
    path: str | Path,
    fmt: str = "srjudge",
    good_out: str | Path | None = None,
    quarantine_out: str | Path | None = None,
) -> ValidationReport:
    """Load ``path`` leniently; write good rows (srjudge JSONL) and bad rows (raw line + error).

    A quarantine line is ``{"file", "line", "field", "error", "raw"}``; ``raw`` is the row's
    text (invalid UTF-8 shown with replacement characters).
    """
    check_outputs(path, good_out, quarantine_out)
    result = load(path, fmt)
    if good_out is not None:
        write_jsonl(good_out, result.examples)
    if quarantine_out is not None:
        write_jsonl(quarantine_out, (quarantine_record(e) for e in result.errors))
    return ValidationReport(
        str(path),
        fmt,
        result.rows,
        len(result.examples),
        result.errors,
        result.flags,
        result.warnings,
    )


def check_outputs(
    path: str | Path, good_out: str | Path | None, quarantine_out: str | Path | None
) -> None:
    """Refuse outputs that would destroy data; see the module docstring."""
    outputs = {"--good": good_out, "--quarantine": quarantine_out}
    refuse_same_paths({"input": path}, {k: v for k, v in outputs.items() if v is not None})
    if good_out is not None:
        refuse_foreign_file(
            good_out, "--good", "an srjudge examples file", looks_like(EXAMPLE_KEYS)
        )
    if quarantine_out is not None:
        is_quarantine = looks_like(QUARANTINE_KEYS)
        refuse_foreign_file(quarantine_out, "--quarantine", "a quarantine file", is_quarantine)


def quarantine_record(error: RowError) -> dict[str, Any]:
    """One quarantine-file line for a bad row: file, line, field, error and the raw text."""
    return {
        "file": error.file,
        "line": error.line,
        "field": error.field,
        "error": error.message,
        "raw": error.raw,
    }
