"""Typed evaluation results and the functions that read them back from disk.

result = load_eval("ev/seed")               # EvalResult from metrics.json
preds = load_predictions("ev/seed")         # {benchmark: {item id: record}}
evals = find_evals(["ev/seed", "ev/iter2"])  # ModelEval per evaluation folder (for reports)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srjudge.errors import UserError
from srjudge.evaluation.metrics import Record
from srjudge.evaluation.stats import format_estimate

# ---------------------------------------------------------------------------------------
# results


@dataclass
class Metric:
    value: float
    lo: float
    hi: float
    n: int

    def format(self, digits: int = 2) -> str:
        return format_estimate(self.value, self.lo, self.hi, digits)


@dataclass
class BenchmarkResult:
    name: str
    mode: str
    metrics: dict[str, Metric]
    counts: dict[str, Any]
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    overlap: dict[str, Any] | None = None
    subsets: dict[str, dict[str, Any]] | None = None


@dataclass
class EvalResult:
    out_dir: str
    label: str
    settings: dict[str, Any]
    benchmarks: dict[str, BenchmarkResult]

    def summary(self) -> dict[str, dict[str, float]]:
        """``{benchmark: {metric: value}}`` (for a stage's provenance; NaN -> None)."""
        out = {b: {m: v.value for m, v in r.metrics.items()} for b, r in self.benchmarks.items()}
        return _nan_to_none(out)

    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none(asdict(self))

    def format_table(self) -> str:
        lines = [f"model: {self.label}  ({self.settings.get('backend')})", ""]
        names = [m for r in self.benchmarks.values() for m in r.metrics]
        w = max([21, *map(len, names)]) + 1  # a long name (safety-response_normal) keeps a gap
        lines.append(f"{'benchmark':<22}{'metric':<{w}}{'value [95% CI]':<26}{'n':>6}")
        for name, r in self.benchmarks.items():
            for metric, m in r.metrics.items():
                lines.append(f"{name:<22}{metric:<{w}}{m.format(3):<26}{m.n:>6}")
            for note in r.notes:
                lines.append(f"{'':<22}note: {note}")
        return "\n".join(lines)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _metric_from(d: dict[str, Any]) -> Metric:
    nan = math.nan
    return Metric(*(nan if d.get(k) is None else d[k] for k in ("value", "lo", "hi")), d["n"])


def load_eval(out_dir: str | Path) -> EvalResult:
    """Read ``metrics.json`` of an evaluation folder back into an ``EvalResult``."""
    d = json.loads((Path(out_dir) / "metrics.json").read_text(encoding="utf-8"))
    benches = {}
    for name, b in d["benchmarks"].items():
        metrics = {k: _metric_from(v) for k, v in b["metrics"].items()}
        benches[name] = BenchmarkResult(**{**b, "metrics": metrics})
    return EvalResult(d["out_dir"], d["label"], d["settings"], benches)


def load_predictions(out_dir: str | Path) -> dict[str, dict[str, Record]]:
    """``{benchmark: {item id: prediction record}}`` from ``predictions.jsonl``."""
    out: dict[str, dict[str, Record]] = {}
    path = Path(out_dir) / "predictions.jsonl"
    if not path.is_file():
        return out
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out.setdefault(rec["benchmark"], {})[rec["id"]] = rec
            except (ValueError, KeyError, TypeError, RecursionError) as e:
                raise UserError(
                    f"{path}:{lineno}: not a prediction line (srjudge eval): "
                    f"{type(e).__name__}: {e}"
                ) from None
    return out


@dataclass
class ModelEval:
    """One model's evaluation as a report shows it: the typed result and its predictions."""

    label: str
    folder: Path
    result: EvalResult
    predictions: dict[str, list[Record]] = field(default_factory=dict)
    """``{benchmark: [prediction record, ...]}`` in file order."""
    display: str = ""
    """The row name in reports (default: ``label``; a run names its judges J_SFT, J_t)."""

    def __post_init__(self) -> None:
        self.display = self.display or self.label

    def value(self, bench: str, metric: str) -> Metric | None:
        b = self.result.benchmarks.get(bench)
        return None if b is None else b.metrics.get(metric)


# ---------------------------------------------------------------------------------------
# reading (tolerant: an unreadable file drops its piece of a report, never the report)


def read_json_tolerant(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl_tolerant(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a torn last line of an interrupted run
                if isinstance(row, dict):
                    rows.append(row)
    except OSError:
        pass
    return rows


def read_model_eval(folder: Path, label: str | None = None) -> ModelEval | None:
    """The evaluation in ``folder`` (``metrics.json`` + ``predictions.jsonl``), or None when
    its metrics are missing or unreadable. ``label`` defaults to the one it was run with."""
    try:
        result = load_eval(folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    preds: dict[str, list[Record]] = {}
    for rec in read_jsonl_tolerant(folder / "predictions.jsonl"):
        preds.setdefault(str(rec.get("benchmark")), []).append(rec)
    return ModelEval(label or str(result.label or folder.name), folder, result, preds)


def find_evals(target: str | Path | list[str | Path]) -> list[ModelEval]:
    """Evaluation folders given one by one (in order), one folder, or the evaluation folders
    inside a parent folder (sorted). A run folder's evaluations: ``loop.rundir.run_evals``."""
    if isinstance(target, list | tuple):
        folders = [Path(t) for t in target]
    else:
        root = Path(target)
        if (root / "metrics.json").is_file():
            folders = [root]
        else:
            folders = sorted(p.parent for p in root.glob("*/metrics.json"))
    return [e for e in (read_model_eval(f) for f in folders) if e is not None]
