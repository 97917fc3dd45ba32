"""Read the two predictions files a study compares, and the items they judged.

Two writers are understood, told apart by their fields (one file must be all of one kind):

* ``srjudge judge`` output (``judge_file``): one line per example,
  ``{"id", "kind", "verdict", "rationale", ...}``; the judged examples are the ``input`` named
  in ``<output stem>.summary.json`` (its sha256 is checked), or ``--examples``.
* ``srjudge eval`` output: ``predictions.jsonl`` in an evaluation folder (the folder may be
  given instead of the file), ``{"key": "<benchmark>/<id>", "benchmark", "id", "mode",
  "verdict", "rationale", ...}``; the items are reloaded the way the evaluation loaded them
  (``settings.json``: per-benchmark paths and seed), or from ``--examples``. RewardBench's
  pointwise records hold a ``chosen`` and a ``rejected`` grading: each becomes its own item,
  ``<key>#chosen`` / ``<key>#rejected``, showing that response alone.

Every problem raises ``StudyInputError`` naming the file, the line and the field, before any
study file is written.

    a = read_predictions("runs/demo/stages/11_eval_sft")
    b = read_predictions("runs/demo/stages/13_eval_iter2_dpo")
    examples = resolve_examples(a, b)          # {item key: Example}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from srjudge.annotation.deps import (
    Example,
    PairwiseExample,
    RecordError,
    benchmark_examples,
    load_examples,
)

Format = Literal["eval", "judge"]
FORMAT_NAMES = {"eval": "`srjudge eval` predictions", "judge": "`srjudge judge` output"}
SIDES = ("chosen", "rejected")


class StudyInputError(ValueError):
    """Bad or mismatched input to ``annotate create``; the message says where and why."""


@dataclass(frozen=True)
class Judged:
    """One model's judgment of one item: what a study shows of it."""

    key: str
    """Unique in its file: the example id (judge), ``<benchmark>/<id>[#side]`` (eval)."""
    example_id: str
    benchmark: str | None
    side: str | None
    """``chosen`` / ``rejected`` for an eval record that graded both responses of a pair."""
    mode: str
    verdict: int | None
    rationale: str | None
    line: int


@dataclass
class Predictions:
    path: Path
    format: Format
    items: dict[str, Judged]
    meta: dict[str, Any] = field(default_factory=dict)
    """``settings.json`` (eval) or ``<stem>.summary.json`` (judge); empty when absent."""

    @property
    def label(self) -> str:
        """A default display name: ``iter2_dpo`` for ``.../13_eval_iter2_dpo``, else the stem."""
        if self.format == "eval":
            name = self.path.parent.name
            head, sep, tail = name.partition("_eval_")
            return tail if sep and head.isdigit() else name
        return self.path.stem


# ---------------------------------------------------------------------------------------
# reading a predictions file


def _fail(path: Path, line: int | None, field_: str | None, message: str) -> StudyInputError:
    where = f"{path}:{line}" if line is not None else str(path)
    return StudyInputError(f"{where}: " + (f"field '{field_}': " if field_ else "") + message)


def _verdict(value: Any, mode: str, path: Path, line: int, name: str) -> int | None:
    allowed = (1, 2) if mode == "pairwise" else (1, 2, 3, 4, 5)
    if value is None:
        return None
    if isinstance(value, bool) or value not in allowed:
        raise _fail(path, line, name, f"expected one of {allowed} or null, got {value!r}")
    return int(value)


def _text(value: Any, path: Path, line: int, name: str) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    if isinstance(value, str):
        return None  # an empty rationale is no rationale
    raise _fail(path, line, name, f"expected a string or null, got {type(value).__name__}")


def _required_str(row: dict[str, Any], key: str, path: Path, line: int) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(path, line, key, "missing or not a non-empty string")
    return value


def _judge_rows(row: dict[str, Any], path: Path, line: int) -> list[Judged]:
    key = _required_str(row, "id", path, line)
    mode = row.get("kind")
    if mode not in ("pointwise", "pairwise"):
        raise _fail(path, line, "kind", f"expected 'pointwise' or 'pairwise', got {mode!r}")
    verdict = _verdict(row.get("verdict"), mode, path, line, "verdict")
    rationale = _text(row.get("rationale"), path, line, "rationale")
    return [Judged(key, key, None, None, mode, verdict, rationale, line)]


def _eval_rows(row: dict[str, Any], path: Path, line: int) -> list[Judged]:
    key = _required_str(row, "key", path, line)
    bench = _required_str(row, "benchmark", path, line)
    ex_id = _required_str(row, "id", path, line)
    mode = row.get("mode")
    if mode not in ("pointwise", "pairwise"):
        raise _fail(path, line, "mode", f"expected 'pointwise' or 'pairwise', got {mode!r}")
    if "chosen" in row or "rejected" in row:  # RewardBench pointwise: both responses graded
        out = []
        for side in SIDES:
            sub = row.get(side)
            if not isinstance(sub, dict):
                raise _fail(path, line, side, "expected an object (a grading of one response)")
            verdict = _verdict(sub.get("verdict"), mode, path, line, f"{side}.verdict")
            rationale = _text(sub.get("rationale"), path, line, f"{side}.rationale")
            out.append(Judged(f"{key}#{side}", ex_id, bench, side, mode, verdict, rationale, line))
        return out
    verdict = _verdict(row.get("verdict"), mode, path, line, "verdict")
    rationale = _text(row.get("rationale"), path, line, "rationale")
    return [Judged(key, ex_id, bench, None, mode, verdict, rationale, line)]


def _row_format(row: dict[str, Any]) -> Format:
    return "eval" if "key" in row and "benchmark" in row else "judge"


def _predictions_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "predictions.jsonl"
    if not p.is_file():
        raise StudyInputError(f"{p}: predictions file not found")
    return p


def _meta(path: Path, fmt: Format) -> dict[str, Any]:
    side = path.parent / "settings.json" if fmt == "eval" else _summary_path(path)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except ValueError as e:
        raise StudyInputError(f"{side}: not valid JSON ({e})") from None
    return meta if isinstance(meta, dict) else {}


def _summary_path(path: Path) -> Path:
    return path.with_name(path.stem + ".summary.json")


def read_predictions(path: str | Path) -> Predictions:
    """Parse and check a ``srjudge eval`` or ``srjudge judge`` predictions file (or folder)."""
    p = _predictions_path(path)
    fmt: Format | None = None
    items: dict[str, Judged] = {}
    with open(p, encoding="utf-8") as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                raise _fail(
                    p, line, None, "not valid JSON (an interrupted run? rerun it)"
                ) from None
            if not isinstance(row, dict):
                raise _fail(p, line, None, "expected a JSON object")
            row_fmt = _row_format(row)
            if fmt is None:
                fmt = row_fmt
            elif row_fmt != fmt:
                raise _fail(p, line, None, f"a {FORMAT_NAMES[row_fmt]} line in a {fmt} file")
            for j in (_eval_rows if fmt == "eval" else _judge_rows)(row, p, line):
                if j.key in items:
                    first = items[j.key].line
                    raise _fail(
                        p, line, "id", f"item {j.key!r} appears twice (first: line {first})"
                    )
                items[j.key] = j
    if fmt is None:
        raise _fail(p, None, None, "no predictions in the file")
    return Predictions(p, fmt, items, _meta(p, fmt))


# ---------------------------------------------------------------------------------------
# the two files must judge the same items


def check_same_items(a: Predictions, b: Predictions) -> None:
    """Refuse two files of different writers, or holding different item ids or modes."""
    if a.format != b.format:
        raise StudyInputError(
            f"A ({a.path}) is {FORMAT_NAMES[a.format]} but B ({b.path}) is "
            f"{FORMAT_NAMES[b.format]}: give two files of the same kind"
        )
    only_a = sorted(set(a.items) - set(b.items))
    only_b = sorted(set(b.items) - set(a.items))
    if only_a or only_b:
        raise StudyInputError(
            f"A ({a.path}, {len(a.items)} items) and B ({b.path}, {len(b.items)} items) do not "
            f"judge the same items: {len(only_a)} only in A (e.g. {', '.join(only_a[:3]) or '-'})"
            f", {len(only_b)} only in B (e.g. {', '.join(only_b[:3]) or '-'})"
        )
    for key, ja in a.items.items():
        jb = b.items[key]
        if ja.mode != jb.mode:
            raise StudyInputError(
                f"item {key!r} is {ja.mode} in A ({a.path}:{ja.line}) but {jb.mode} in B "
                f"({b.path}:{jb.line})"
            )


# ---------------------------------------------------------------------------------------
# the judged examples


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load(path: Path) -> list[Example]:
    try:
        return load_examples(path)
    except FileNotFoundError:
        raise StudyInputError(f"{path}: examples file not found") from None
    except (RecordError, ValueError) as e:
        raise StudyInputError(f"{path}: {e}") from None


def _judge_input(p: Predictions) -> Path:
    summary = _summary_path(p.path)
    src = (p.meta.get("provenance") or {}).get("input")
    if not src:
        raise StudyInputError(
            f"{p.path}: no {summary.name} naming the judged input; pass --examples FILE"
        )
    path = Path(src)
    if not path.is_file():
        raise StudyInputError(
            f"{summary}: the judged input {src} is not found; pass --examples FILE"
        )
    want = (p.meta.get("provenance") or {}).get("input_sha256")
    if want and _sha256(path) != want:
        raise StudyInputError(f"{path} changed since {p.path} was judged (sha256 differs)")
    return path


def _judge_examples(a: Predictions, b: Predictions) -> dict[str, Example]:
    path_a, path_b = _judge_input(a), _judge_input(b)
    if _sha256(path_a) != _sha256(path_b):
        raise StudyInputError(
            f"A judged {path_a} but B judged {path_b}, and they differ: give two judgments "
            "of the same input (or --examples FILE)"
        )
    return {ex.id: ex for ex in _load(path_a)}


def _eval_path(p: Predictions, given: str) -> str:
    """A data path from ``settings.json``: below the run folder the eval is in, else as given.

    A relative path in ``settings.json`` was relative to wherever the eval ran. When the eval is
    a stage of a run (``RUN/stages/NN_eval_x``), the copy inside that run is the one it read, so
    it wins over a same-named file under the current directory (another run's, say).
    """
    parts = Path(given).parts
    run_root = p.path.parent.parent.parent  # RUN/stages/NN_eval_x/predictions.jsonl
    if "stages" in parts and p.path.parent.parent.name == "stages":
        candidate = run_root.joinpath(*parts[parts.index("stages") :])
        if candidate.exists():
            return str(candidate)
    if Path(given).exists():
        return given
    raise StudyInputError(
        f"{p.path.parent / 'settings.json'}: data file {given} not found; pass --examples FILE"
    )


def _eval_examples(a: Predictions, b: Predictions) -> dict[str, Example]:
    paths_a, paths_b = (p.meta.get("paths") or {} for p in (a, b))
    seed = a.meta.get("seed", 0)
    out: dict[str, Example] = {}
    for bench in sorted({j.benchmark for j in a.items.values() if j.benchmark}):
        given_a, given_b = paths_a.get(bench), paths_b.get(bench)
        if [Path(x).name for x in given_a or []] != [Path(x).name for x in given_b or []] or (
            seed != b.meta.get("seed", 0)
        ):
            raise StudyInputError(
                f"{bench}: A and B were evaluated on different data or seeds (settings.json); "
                "pass --examples FILE"
            )
        paths = [_eval_path(a, g) for g in given_a] if given_a else None
        try:
            examples = benchmark_examples(bench, paths, seed)
        except (OSError, ValueError) as e:
            raise StudyInputError(f"{bench}: could not reload its items ({e})") from None
        out.update((f"{bench}/{ex.id}", ex) for ex in examples)
    return out


def resolve_examples(
    a: Predictions, b: Predictions, examples: list[str | Path] | None = None
) -> dict[str, Example]:
    """``{item key: Example}`` for every item of ``a`` (``check_same_items`` first)."""
    if examples:
        by_id: dict[str, Example] = {}
        for path in examples:
            for ex in _load(Path(path)):
                if ex.id in by_id:
                    raise StudyInputError(f"{path}: example id {ex.id!r} appears twice")
                by_id[ex.id] = ex
        found = {j.key: by_id.get(j.example_id) for j in a.items.values()}
    else:
        loaded = _eval_examples(a, b) if a.format == "eval" else _judge_examples(a, b)
        found = {j.key: loaded.get(_lookup_key(j)) for j in a.items.values()}
    missing = sorted(k for k, ex in found.items() if ex is None)
    if missing:
        raise StudyInputError(
            f"{len(missing)} judged items have no example (e.g. {', '.join(missing[:3])}); "
            "pass the judged examples with --examples FILE"
        )
    out: dict[str, Example] = {k: ex for k, ex in found.items() if ex is not None}
    for key, ex in out.items():
        _check_kind(a.items[key], ex, a.path)
    return out


def _lookup_key(j: Judged) -> str:
    return f"{j.benchmark}/{j.example_id}" if j.benchmark else j.example_id


def _check_kind(j: Judged, ex: Example, path: Path) -> None:
    want = "pairwise" if j.mode == "pairwise" or j.side else "pointwise"
    if ex.kind != want:
        raise StudyInputError(
            f"{path}:{j.line}: item {j.key!r} was judged {j.mode} but its example is {ex.kind}"
        )


def shown_response(ex: Example, side: str | None) -> dict[str, str]:
    """The response(s) an item shows: both of a pair, or one side of a graded pair."""
    if not isinstance(ex, PairwiseExample):
        return {"response": ex.response}
    if side is None:
        return {"response_1": ex.response_1, "response_2": ex.response_2}
    chosen_first = ex.gold_preference in (1, None)  # as srjudge.evaluation grades the sides
    first = chosen_first == (side == "chosen")
    return {"response": ex.response_1 if first else ex.response_2}
