"""Typed evaluation results and the functions that read them back from disk.

result = load_eval("ev/seed")               # EvalResult from metrics.json
preds = load_predictions("ev/seed")         # {benchmark: {item id: record}}
evals = find_evals("runs/demo")             # ModelEval per evaluation folder (for reports)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srjudge.evaluation.metrics import Record
from srjudge.evaluation.stats import format_estimate
from srjudge.records import read_jsonl

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
        lines.append(f"{'benchmark':<22}{'metric':<22}{'value [95% CI]':<26}{'n':>6}")
        for name, r in self.benchmarks.items():
            for metric, m in r.metrics.items():
                lines.append(f"{name:<22}{metric:<22}{m.format(3):<26}{m.n:>6}")
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
    if path.is_file():
        for rec in read_jsonl(path):
            out.setdefault(rec["benchmark"], {})[rec["id"]] = rec
    return out


@dataclass
class ModelEval:
    label: str
    folder: Path
    metrics: dict[str, Any]
    predictions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def value(self, bench: str, metric: str) -> dict[str, Any] | None:
        return self.metrics.get("benchmarks", {}).get(bench, {}).get("metrics", {}).get(metric)


# ---------------------------------------------------------------------------------------
# reading (tolerant)


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


def display_name(label: str) -> str:
    """Row names as in the paper: seed model, J_SFT, J_t.

    >>> display_name("iter2_dpo"), display_name("sft")
    ('J_2 (iter2_dpo)', 'J_SFT')
    """
    if label == "seed":
        return "seed model"
    if label == "sft":
        return "J_SFT"
    m = re.fullmatch(r"iter(\d+)_(\w+)", label)
    return f"J_{m.group(1)} ({label})" if m else label


def _eval_label(folder: Path, metrics: dict[str, Any]) -> str:
    m = re.fullmatch(r"\d+_eval_(.+)", folder.name)
    return m.group(1) if m else str(metrics.get("label") or folder.name)


def _load_eval(folder: Path) -> ModelEval | None:
    metrics = read_json_tolerant(folder / "metrics.json")
    if not isinstance(metrics, dict):
        return None
    preds: dict[str, list[dict[str, Any]]] = {}
    for rec in read_jsonl_tolerant(folder / "predictions.jsonl"):
        preds.setdefault(str(rec.get("benchmark")), []).append(rec)
    return ModelEval(_eval_label(folder, metrics), folder, metrics, preds)


def find_evals(target: str | Path | list[str | Path]) -> list[ModelEval]:
    """Evaluation folders of a run, of a parent folder, or given one by one (in order)."""
    if isinstance(target, list | tuple):
        folders = [Path(t) for t in target]
    else:
        root = Path(target)
        if (root / "metrics.json").is_file():
            folders = [root]
        elif (root / "stages").is_dir():
            folders = sorted(p for p in (root / "stages").glob("*_eval_*") if p.is_dir())
        else:
            folders = sorted(p.parent for p in root.glob("*/metrics.json"))
    return [e for e in (_load_eval(f) for f in folders) if e is not None]
