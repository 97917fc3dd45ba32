"""Raw rows from any data file, and a converter applied to each: one reader for every verb.

    for raw in read_rows("x.jsonl.gz"):       # RawRow(line, text, obj | error)
        ...
    result = load_rows("x.jsonl", "srjudge", convert)   # LoadResult(examples, errors, ...)

``read_rows`` reads JSONL, JSON (a list of rows, or JSON lines), parquet, any of them
``.gz``-compressed, or a Hugging Face dataset id (``owner/name`` or ``owner/name:split``) when
no such local file exists. A folder, FIFO or other non-regular path is refused (a FIFO would
block forever). It never raises on one bad row: malformed JSON, invalid UTF-8 or nesting
deeper than ``MAX_DEPTH`` becomes that row's ``error``. ``line`` is the 1-based line of a
JSONL file, or the 1-based item number of a JSON list, parquet table or Hub split.
``load_rows`` turns bad rows and duplicate ids into ``RowError(file, line, field, message,
raw)`` and keeps the others; its ``lint`` (srjudge's format: ``records.unknown_fields``) adds
warnings, such as a misspelt field.
``LoadResult.strict()`` is for verbs that must not skip a row: it refuses a file with any bad row.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srjudge.errors import UserError
from srjudge.paths import require_file
from srjudge.records import (
    Example,
    RecordError,
)

MAX_DEPTH = 64
"""Deepest JSON nesting a row may have; records nest a few levels, so deeper is an error."""

# ---------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class RowError:
    """One row that was not loaded: where it is, which field, why, and its raw text."""

    file: str
    line: int
    field: str
    message: str
    raw: str = ""
    warning: bool = False
    """A warning (the row was still loaded), not an error."""

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"{self.file}:{self.line}: {kind}field '{self.field}': {self.message}"


@dataclass
class LoadResult:
    """What a loader read: good examples, one error per bad row, and counted flags."""

    path: str
    fmt: str
    rows: int
    examples: list[Example]
    errors: list[RowError]
    flags: dict[str, int] = field(default_factory=dict)
    warnings: list[RowError] = field(default_factory=list)

    def strict(self) -> list[Example]:
        """The examples, or a ``UserError`` listing the bad rows (a verb that must not skip)."""
        if not self.errors:
            return self.examples
        shown = "\n  ".join(str(e) for e in self.errors[:5])
        more = f"\n  ... and {len(self.errors) - 5} more" if len(self.errors) > 5 else ""
        raise UserError(
            f"{self.path}: {len(self.errors)} of {self.rows} rows are bad, so nothing was done "
            f"('srjudge data validate {self.path}' reports and quarantines them):\n  {shown}{more}"
        )


# a row converter: (parsed row, 1-based line) -> example; raises RecordError naming the field
Converter = Callable[[Any, int], Example]


# ---------------------------------------------------------------------------------------
# raw rows: bytes -> (line, raw text, parsed object or error), never raising on one bad row


@dataclass(frozen=True)
class RawRow:
    """One source row before conversion: parsed ``obj``, or the ``error`` that stopped it."""

    line: int
    text: str
    obj: Any = None
    error: RecordError | None = None


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError
        raise UserError(f"{path}: not a valid gzip file ({e})") from None


def _depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            stack.extend((v, depth) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _too_deep() -> RecordError:
    return RecordError("<json>", f"nested deeper than {MAX_DEPTH} levels; not a record")


def _base_suffix(path: Path) -> str:
    """``.jsonl`` for ``x.jsonl.gz`` as for ``x.jsonl``."""
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def _jsonl_rows(data: bytes) -> Iterator[RawRow]:
    # Decode per line so that one line of invalid UTF-8 costs that line only.
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield RawRow(
                lineno,
                text,
                error=RecordError("<utf-8>", f"invalid UTF-8: {e.reason} at byte {e.start}"),
            )
            continue
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as e:
            error = RecordError("<json>", f"malformed JSON: {e.msg} at column {e.colno}")
            yield RawRow(lineno, text, error=error)
            continue
        except RecursionError:
            yield RawRow(lineno, text, error=_too_deep())
            continue
        yield RawRow(lineno, text, obj=obj, error=_too_deep() if _depth(obj) > MAX_DEPTH else None)


def _item_rows(items: Iterable[Any]) -> Iterator[RawRow]:
    for i, obj in enumerate(items, 1):
        if _depth(obj) > MAX_DEPTH:
            yield RawRow(i, "<not shown: nested too deeply>", error=_too_deep())
            continue
        yield RawRow(i, json.dumps(obj, ensure_ascii=False, default=str), obj=obj)


def _json_rows(data: bytes, path: Path) -> Iterator[RawRow]:
    """A ``.json`` file holding a list of rows; one holding JSON lines is read as JSONL.

    A list is parsed whole, so a byte or syntax error in it is a file error (``RecordError``
    naming the position), not a row error: no later row could be trusted.
    """
    if not data.lstrip().startswith(b"["):
        yield from _jsonl_rows(data)
        return
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RecordError("<utf-8>", f"invalid UTF-8 at byte {e.start}", str(path)) from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise RecordError("<json>", f"malformed JSON list at {where}: {e.msg}", str(path)) from None
    except RecursionError:
        raise RecordError("<json>", f"nested deeper than {MAX_DEPTH} levels", str(path)) from None
    yield from _item_rows(doc)


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq  # imported here: only parquet inputs need it

    yield from _item_rows(pq.read_table(path).to_pylist())


def _hub_rows(dataset_id: str) -> Iterator[RawRow]:
    import datasets  # imported here: slow, and only Hub inputs need it

    name, _, split = dataset_id.partition(":")
    yield from _item_rows(datasets.load_dataset(name, split=split or "train"))


def read_rows(path: str | Path) -> Iterator[RawRow]:
    """Raw rows of a local JSONL/JSON/parquet file (optionally ``.gz``) or a Hub dataset id."""
    p = Path(path)
    if not p.exists():
        looks_local = _base_suffix(p) in (".json", ".jsonl", ".parquet")
        if not looks_local and re.fullmatch(r"[\w.-]+/[\w.-]+(:\w+)?", str(path)):
            yield from _hub_rows(str(path))
            return
        raise FileNotFoundError(f"{path}: no such file (nor a Hugging Face id 'owner/name')")
    require_file(p, "data file")  # a folder or a FIFO: refused, never read (a FIFO would hang)
    suffix = _base_suffix(p)
    if suffix == ".parquet":
        yield from _parquet_rows(p)
    elif suffix == ".json":
        yield from _json_rows(_open_bytes(p), p)
    else:
        yield from _jsonl_rows(_open_bytes(p))


def load_rows(
    path: str | Path,
    fmt: str,
    convert: Converter,
    lint: Callable[[Any], list[RecordError]] | None = None,
) -> LoadResult:
    """Apply ``convert`` to each raw row; bad rows and duplicate ids become ``RowError``s,
    and what ``lint`` finds in a row (loaded or not) becomes a warning."""
    result = LoadResult(path=str(path), fmt=fmt, rows=0, examples=[], errors=[])
    first_line: dict[str, int] = {}
    for raw in read_rows(path):
        result.rows += 1
        for w in lint(raw.obj) if lint is not None and raw.error is None else ():
            result.warnings.append(RowError(str(path), raw.line, w.field, w.message, warning=True))
        try:
            if raw.error is not None:
                raise raw.error
            ex = convert(raw.obj, raw.line)
            if ex.id in first_line:
                raise RecordError(
                    "id", f"duplicate id {ex.id!r} (first at line {first_line[ex.id]})"
                )
        except RecordError as e:
            result.errors.append(RowError(str(path), raw.line, e.field, e.message, raw.text))
            continue
        except (TypeError, ValueError, KeyError, RecursionError) as e:  # a converter bug
            # must not sink the file
            message = f"unexpected {type(e).__name__}: {e}"
            result.errors.append(RowError(str(path), raw.line, "<row>", message, raw.text))
            continue
        first_line[ex.id] = raw.line
        result.examples.append(ex)
        for flag in ex.meta.get("flags", ()):
            result.flags[flag] = result.flags.get(flag, 0) + 1
    return result
