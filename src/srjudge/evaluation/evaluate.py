"""``evaluate``: a judge's metrics on benchmarks, with 95% bootstrap CIs, written to a folder.

    from srjudge.evaluation.evaluate import evaluate
    result = evaluate("smollm2-135m", ["rewardbench", "biggen"], limit=50, out_dir="ev")
    print(result.format_table())

    srjudge eval --model smollm2-135m --benchmarks rewardbench,biggen --limit 50 --out ev

Output in ``out_dir``: ``predictions.jsonl`` (one line per item, keyed ``<benchmark>/<id>``,
written through ``ResumableJSONL``: a killed eval continues on rerun), ``metrics.json`` (written
last) and ``settings.json`` (a rerun with other settings is refused). A prediction line::

    {"key": "biggen/biggen-x-gpt4", "benchmark": "biggen", "id": "biggen-x-gpt4",
     "mode": "pointwise", "pred": 4.0, "verdict": 4, "gold": 3.0, "gpt4": 4.0,
     "rationale": "...", "judgments": 1, "parse_failures": 0, "stratum": "planning"}

Overlap: given training examples, evaluation items whose prompt overlaps them
(``data.find_overlap``) are left out and listed in ``metrics.json``; ``allow_overlap`` keeps
them, marks their predictions ``"overlap": true`` and puts a warning in the notes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from srjudge import __version__, data
from srjudge.evaluation.benchmarks import (
    BENCHMARKS,
    MODE_VARIANTS,
    Benchmark,
    benchmark_notes,
    load_benchmark,
    resolve_benchmarks,
    stratified_sample,
)
from srjudge.evaluation.metrics import N_BOOT, MetricFn, Record, as_number, parse_failure_rate
from srjudge.evaluation.results import BenchmarkResult, EvalResult, Metric
from srjudge.evaluation.stats import bootstrap_ci
from srjudge.evaluation.tasks import TASKS, JudgeOptions
from srjudge.judging.backends import Backend, VerdictScorer
from srjudge.judging.judge import Judge
from srjudge.records import Example, read_jsonl
from srjudge.resume import ResumableJSONL

BATCH = 8
"""Items judged between two appends to ``predictions.jsonl``."""


def compute_metrics(
    bench: Benchmark, records: list[Record], *, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Metric]:
    """Every metric of ``bench`` with a 95% bootstrap CI (stratified by ``stratum``)."""
    strata = [r["stratum"] for r in records]
    out = {}
    fns: dict[str, MetricFn] = {**bench.metrics, "parse_failure_rate": parse_failure_rate}
    for name, fn in fns.items():
        if name.endswith("_expected") and all(r.get("score_expected") is None for r in records):
            continue
        point, lo, hi = bootstrap_ci(records, fn, n_boot=n_boot, seed=seed, strata=strata)
        out[name] = Metric(point, lo, hi, len(records))
    return out


def _subset_table(records: list[Record]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(r["stratum"], []).append(r)
    return {
        s: {"accuracy": sum(as_number(r.get("score")) for r in rs) / len(rs), "n": len(rs)}
        for s, rs in sorted(groups.items())
    }


# ---------------------------------------------------------------------------------------
# evaluate


def _as_judge(
    model_or_judge: str | Backend | Judge, backend: str, options: dict, max_retries: int | None
) -> Judge:
    if isinstance(model_or_judge, Judge):
        judge = model_or_judge
    elif isinstance(model_or_judge, str):
        judge = Judge.load(model_or_judge, backend=backend, **options)
    else:
        judge = Judge(model_or_judge)
    if max_retries is not None:
        judge.max_retries = max_retries
    return judge


def _check_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    path = out_dir / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in settings if k != "benchmarks" and old.get(k) != settings[k]]
        if diff:
            raise ValueError(
                f"{out_dir} holds an evaluation with other settings ({', '.join(diff)}); "
                "use another --out or delete it"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _normal_paths(
    paths: dict[str, str | Sequence[str]] | None, mode: str | None
) -> dict[str, list[str]]:
    """Path overrides as ``{benchmark: [str, ...]}``, keys mapped like ``resolve_benchmarks``."""
    out = {}
    for name, value in (paths or {}).items():
        key = MODE_VARIANTS.get((name, mode), name) if mode else name
        out[key] = [str(value)] if isinstance(value, str | Path) else [str(v) for v in value]
    return out


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def evaluate(
    model_or_judge: str | Backend | Judge,
    benchmarks: Sequence[str],
    *,
    out_dir: str | Path,
    limit: int | None = None,
    samples: int = 1,
    seed: int = 0,
    mode: str | None = None,
    paths: dict[str, str | Sequence[str]] | None = None,
    train_examples: Iterable[Example] | None = None,
    allow_overlap: bool = False,
    max_new_tokens: int = 512,
    expected_score: bool | None = None,
    backend: str = "transformers",
    backend_options: dict[str, Any] | None = None,
    model_label: str | None = None,
    max_retries: int | None = None,
    n_boot: int = N_BOOT,
    progress: bool = False,
    score_only: bool = False,
) -> EvalResult:
    """Judge ``benchmarks`` (``BENCHMARKS`` names) and write predictions and metrics.

    ``model_or_judge`` is a ``Judge``, a ``Backend``, or a model name loaded with
    ``backend``. ``limit`` takes a stratified, seeded sample per benchmark. ``paths`` replaces
    a benchmark's default data (``{"in-domain": "heldout.jsonl"}``; in-domain overrides are
    srjudge JSONL, already held out). ``expected_score`` (default: when the backend reads
    token probabilities) adds the expected-score variants. ``max_retries`` overrides the
    judge's re-samples of unparseable judgments (``Judge``: 2). ``progress`` prints a line to
    stderr after each batch of items. See the module docstring.
    """
    out = Path(out_dir)
    names = resolve_benchmarks(benchmarks, mode)
    judge = _as_judge(model_or_judge, backend, backend_options or {}, max_retries)
    if expected_score is None:
        expected_score = isinstance(judge.backend, VerdictScorer)
    opts = JudgeOptions(samples, seed, max_new_tokens, expected_score, score_only)
    label = model_label or (
        model_or_judge if isinstance(model_or_judge, str) else judge.backend.name
    )
    settings = {
        "model": label,
        "backend": judge.backend.name,
        "samples": samples,
        "seed": seed,
        "limit": limit,
        "max_new_tokens": max_new_tokens,
        "max_retries": judge.max_retries,
        "expected_score": expected_score,
        "score_only": score_only,
        "allow_overlap": allow_overlap,
        "benchmarks": names,
        "paths": _normal_paths(paths, mode),
    }
    _check_settings(out, settings)
    train = list(train_examples) if train_examples is not None else None
    results: dict[str, BenchmarkResult] = {}
    started = time.time()
    with ResumableJSONL(out / "predictions.jsonl", key="key") as sink:
        for name in names:
            results[name] = _run_benchmark(
                BENCHMARKS[name],
                judge,
                sink,
                opts,
                limit=limit,
                train=train,
                allow_overlap=allow_overlap,
                override=settings["paths"].get(name),
                n_boot=n_boot,
                progress=progress,
            )
    result = EvalResult(str(out), label, settings | {"srjudge_version": __version__}, results)
    result.settings["seconds"] = round(time.time() - started, 1)
    _write_json(out / "metrics.json", result.to_dict())
    return result


def _overlap(
    examples: list[Example], train: list[Example] | None, allow: bool
) -> tuple[list[Example], dict[str, Any] | None, set[str]]:
    if train is None:
        return examples, None, set()
    report = data.find_overlap(train, examples)
    ids = set(report.overlapping_ids)
    info = {
        "checked": True,
        "summary": report.summary(),
        "ids": sorted(ids),
        "matches": report.matches,
        "action": "kept (flagged)" if allow else "excluded",
    }
    if allow:
        return examples, info, ids
    return [ex for ex in examples if ex.id not in ids], info, set()


def _run_benchmark(
    bench: Benchmark,
    judge: Judge,
    sink: ResumableJSONL,
    opts: JudgeOptions,
    *,
    limit: int | None,
    train: list[Example] | None,
    allow_overlap: bool,
    override: list[str] | None,
    n_boot: int,
    progress: bool,
) -> BenchmarkResult:
    examples, info = load_benchmark(bench, override, opts.seed)
    examples, overlap, flagged = _overlap(examples, train, allow_overlap)
    info["after_overlap"] = len(examples)
    loaded = examples
    if limit is not None:
        examples = stratified_sample(examples, limit, bench.stratum, opts.seed)
    info["selected"] = len(examples)
    keys = {ex.id: f"{bench.name}/{ex.id}" for ex in examples}
    todo = [ex for ex in examples if keys[ex.id] not in sink.done]
    for i in range(0, len(todo), BATCH):
        batch = todo[i : i + BATCH]
        for ex, rec in zip(batch, TASKS[bench.task](judge, batch, opts), strict=True):
            head = {
                "key": keys[ex.id],
                "benchmark": bench.name,
                "id": ex.id,
                "mode": bench.mode,
                "stratum": bench.stratum(ex),
            }
            if ex.id in flagged:
                head["overlap"] = True
            sink.append(head | rec)
        if progress:
            done = len(examples) - len(todo) + i + len(batch)
            print(f"{bench.name}: {done}/{len(examples)} items judged", file=sys.stderr)
    wanted = set(keys.values())
    records = [r for r in read_jsonl(sink.path) if r["key"] in wanted]
    metrics = compute_metrics(bench, records, n_boot=n_boot, seed=opts.seed)
    notes = benchmark_notes(bench, loaded, examples, records)
    if flagged:
        notes.insert(
            0,
            f"WARNING: {len(flagged)} items overlap the training data and were KEPT "
            "(--allow-overlap); these numbers may be contaminated",
        )
    if overlap and not flagged and overlap["ids"]:
        notes.insert(0, f"{len(overlap['ids'])} items overlapping the training data excluded")
    counts = {
        "items": len(records),
        "judgments": sum(r["judgments"] for r in records),
        "parse_failures": sum(r["parse_failures"] for r in records),
        "resumed": len(examples) - len(todo),
    }
    subsets = _subset_table(records) if bench.subset_table else None
    return BenchmarkResult(bench.name, bench.mode, metrics, counts, info, notes, overlap, subsets)
