"""``evaluate``: a judge's metrics on benchmarks, with 95% bootstrap CIs, written to a folder.

    from srjudge.evaluation.evaluate import evaluate
    result = evaluate("smollm2-135m", ["rewardbench", "biggen"], limit=50, out_dir="ev")
    print(result.format_table())

    srjudge eval --model smollm2-135m --benchmarks rewardbench,biggen --limit 50 --out ev

Output in ``out_dir``: ``predictions.jsonl`` (one line per item, keyed ``<benchmark>/<id>``,
written through ``ResumableJSONL``: a killed eval continues on rerun), ``metrics.json`` (written
last) and ``settings.json`` (written first; a rerun with other settings, templates included,
is refused saying what differs, and so is a rerun whose data changed under the same ids: each
prediction keeps ``input_sha256``, the hash of the item judged). A folder that exists, is not
empty and holds no ``settings.json`` of an evaluation is refused before anything is written.
A prediction line::

    {"key": "biggen/biggen-x-gpt4", "benchmark": "biggen", "id": "biggen-x-gpt4",
     "mode": "pointwise", "pred": 4.0, "verdict": 4, "gold": 3.0, "gpt4": 4.0,
     "rationale": "...", "judgments": 1, "parse_failures": 0, "stratum": "planning",
     "input_sha256": "..."}

Overlap: given training examples, evaluation items whose prompt overlaps them
(``data.find_overlap``) are left out and listed in ``metrics.json``; ``allow_overlap`` keeps
them, marks their predictions ``"overlap": true`` and puts a warning in the notes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from srjudge import __version__, data
from srjudge.errors import UserError
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
from srjudge.judging.backends import DEFAULT_BACKEND, Backend, VerdictScorer, load_backend
from srjudge.judging.judge import Judge
from srjudge.judging.prompts import judge_template_id, template_hash
from srjudge.judging.shards import ShardJob, check_files, run_sharded
from srjudge.paths import json_object_has, refuse_foreign_dir, refuse_special
from srjudge.records import Example, example_hash, read_jsonl
from srjudge.resume import settings_diff

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


def _is_eval_dir(out_dir: Path) -> bool:
    return json_object_has(out_dir / "settings.json", ("model", "benchmarks", "samples"))


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse an output folder that is a file, or holds files but is no evaluation folder."""
    refuse_foreign_dir(out_dir, "--out", "an evaluation folder (no settings.json)", _is_eval_dir)
    predictions = Path(out_dir) / "predictions.jsonl"
    refuse_special(predictions, "predictions file")


def _check_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    check_out_dir(out_dir)
    path = out_dir / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = settings_diff(old, json.loads(json.dumps(settings)), ignore=("benchmarks",))
        if diff:
            raise UserError(
                f"{out_dir} holds an evaluation with other settings ({'; '.join(diff)}); "
                "resuming would mix them, so nothing was changed. Use another --out or delete it"
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
    backend: str = DEFAULT_BACKEND,
    backend_options: dict[str, Any] | None = None,
    model_label: str | None = None,
    max_retries: int | None = None,
    n_boot: int = N_BOOT,
    progress: bool = False,
    score_only: bool = False,
    workers: int = 1,
    devices_per_worker: int = 1,
    backend_factory: Callable[[], Backend] | None = None,
) -> EvalResult:
    """Judge ``benchmarks`` (``BENCHMARKS`` names) and write predictions and metrics.

    ``model_or_judge`` is a ``Judge``, a ``Backend``, or a model name loaded with
    ``backend``. ``limit`` takes a stratified, seeded sample per benchmark. ``paths`` replaces
    a benchmark's default data (``{"in-domain": "heldout.jsonl"}``; in-domain overrides are
    srjudge JSONL, already held out). ``expected_score`` (default: when the backend reads
    token probabilities) adds the expected-score variants. ``max_retries`` overrides the
    judge's re-samples of unparseable judgments (``Judge``: 2). ``progress`` shows a progress
    bar on stderr. ``workers`` > 1 splits the items over that many processes
    (``srjudge.judging.shards``): this one, with the judge's backend, and ``workers - 1``
    spawned ones, each with a backend from ``backend_factory`` (picklable; by default built
    from a model name the way this one was). See the module docstring.
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
        "templates": {
            tid: template_hash(tid)
            for tid in (
                judge_template_id(m, score_only=score_only) for m in ("pointwise", "pairwise")
            )
        },
    }
    _check_settings(out, settings)
    train = list(train_examples) if train_examples is not None else None
    started = time.time()
    chosen = [
        _select(BENCHMARKS[name], opts.seed, limit, train, allow_overlap,
                settings["paths"].get(name))
        for name in names
    ]  # fmt: skip
    path = out / "predictions.jsonl"
    if workers > 1 and backend_factory is None:
        backend_factory = _factory(model_or_judge, backend, backend_options or {})
    job = ShardJob(
        backend_factory or (lambda: judge.backend),
        [[(f"{c.bench.name}/{ex.id}", (c.bench.name, ex, ex.id in c.flagged))
          for ex in c.examples] for c in chosen],
        partial(judge_items, opts=opts, max_retries=judge.max_retries, batch_size=judge.batch_size),
        key_field="key",
        batch_size=BATCH,
        progress=progress,
        fingerprints={f"{c.bench.name}/{ex.id}": example_hash(ex)
                      for c in chosen for ex in c.examples},
    )  # fmt: skip
    done = check_files(job, path)
    run_sharded(job, path, workers=workers, devices_per_worker=devices_per_worker,
                backend=judge.backend, done=done)  # fmt: skip
    results = {c.bench.name: _result(c, path, done, n_boot, opts.seed) for c in chosen}
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


@dataclass
class _Chosen:
    """A benchmark's items to judge, and what choosing them left out."""

    bench: Benchmark
    examples: list[Example]
    loaded: list[Example]
    info: dict[str, Any]
    overlap: dict[str, Any] | None
    flagged: set[str]


def _select(
    bench: Benchmark,
    seed: int,
    limit: int | None,
    train: list[Example] | None,
    allow_overlap: bool,
    override: list[str] | None,
) -> _Chosen:
    examples, info = load_benchmark(bench, override, seed)
    if not examples:  # nothing to judge is an error, not a row of empty metrics
        raise UserError(
            f"{bench.name}: no item could be loaded from {', '.join(info['paths'])} "
            f"({info['rows']} rows, {info['load_errors']} bad; 'srjudge data validate' lists them)"
        )
    examples, overlap, flagged = _overlap(examples, train, allow_overlap)
    info["after_overlap"] = len(examples)
    loaded = examples
    if limit is not None:
        examples = stratified_sample(examples, limit, bench.stratum, seed)
    info["selected"] = len(examples)
    return _Chosen(bench, examples, loaded, info, overlap, flagged)


def judge_items(
    backend: Backend,
    items: list[tuple[str, Example, bool]],
    *,
    opts: JudgeOptions,
    max_retries: int,
    batch_size: int,
) -> list[Record]:
    """Prediction records (all but ``key`` and ``input_sha256``) of ``(benchmark, example,
    overlaps)`` items of one benchmark."""
    bench = BENCHMARKS[items[0][0]]
    examples = [ex for _, ex, _ in items]
    judge = Judge(backend, max_retries=max_retries, batch_size=batch_size)
    out = []
    for (_, ex, overlaps), rec in zip(items, TASKS[bench.task](judge, examples, opts), strict=True):
        head = {"benchmark": bench.name, "id": ex.id, "mode": bench.mode,
                "stratum": bench.stratum(ex)}  # fmt: skip
        out.append(head | ({"overlap": True} if overlaps else {}) | rec)
    return out


def _factory(model_or_judge: str | Backend | Judge, backend: str, options: dict) -> Any:
    if not isinstance(model_or_judge, str):
        raise ValueError(
            "evaluate with workers > 1 needs a model name or a picklable backend_factory, "
            "so that each worker builds its own backend"
        )
    return partial(load_backend, backend, model_or_judge, **options)


def _result(c: _Chosen, path: Path, done: set[str], n_boot: int, seed: int) -> BenchmarkResult:
    bench = c.bench
    wanted = {f"{bench.name}/{ex.id}" for ex in c.examples}
    records = [r for r in read_jsonl(path) if r["key"] in wanted]
    metrics = compute_metrics(bench, records, n_boot=n_boot, seed=seed)
    notes = benchmark_notes(bench, c.loaded, c.examples, records)
    if c.info["load_errors"]:
        notes.insert(
            0,
            f"{c.info['load_errors']} of {c.info['rows']} data rows could not be loaded and "
            "were left out ('srjudge data validate' lists them)",
        )
    if c.flagged:
        notes.insert(
            0,
            f"WARNING: {len(c.flagged)} items overlap the training data and were KEPT "
            "(--allow-overlap); these numbers may be contaminated",
        )
    if c.overlap and not c.flagged and c.overlap["ids"]:
        notes.insert(0, f"{len(c.overlap['ids'])} items overlapping the training data excluded")
    counts = {
        "items": len(records),
        "judgments": sum(r["judgments"] for r in records),
        "parse_failures": sum(r["parse_failures"] for r in records),
        "resumed": len(wanted & done),
    }
    subsets = _subset_table(records) if bench.subset_table else None
    return BenchmarkResult(
        bench.name, bench.mode, metrics, counts, c.info, notes, c.overlap, subsets
    )
