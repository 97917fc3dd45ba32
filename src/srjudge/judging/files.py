"""``judge_file``: judge every example of a data file into a JSONL, resumably.

    summary = judge_file("x.jsonl", "y.jsonl", Judge.load("smollm2-135m"), samples=5)
    srjudge judge --model smollm2-135m --input x.jsonl --output y.jsonl --samples 5

Output: one JSON line per example, in input order::

    {"id": "mt-1", "kind": "pointwise", "verdict": 4, "rationale": "...", "parse_error": null,
     "raw": "...", "attempts": 1, "counts": {"judgments": 1, "parse_failures": 0, "retries": 0}}

with ``samples`` (each judgment) and ``mean`` when samples > 1; ``consistent``,
``verdict_original_order``, ``verdict_swapped_order`` and ``swapped_samples`` (verdicts as
the model gave them, in the swapped order) with ``both_orders``; ``expected_score`` and
``score_probs`` with ``expected_score``. The file is written through ``ResumableJSONL``, so a
killed run continues on rerun; ``<output stem>.summary.json`` holds the counts over the whole
file and the provenance (``JudgeSummary``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from srjudge import __version__
from srjudge.judging.backends import Backend
from srjudge.judging.judge import Comparison, Grade, Judge, mean_verdict
from srjudge.judging.prompts import judge_template_id, template_hash
from srjudge.judging.sampling import DEFAULT_BATCH_SIZE, batched, progress_bar
from srjudge.records import (
    Example,
    Judgment,
    PairwiseExample,
    PointwiseExample,
    load_examples,
    read_jsonl,
)
from srjudge.resume import ResumableJSONL

# ---------------------------------------------------------------------------------------
# judge_file


@dataclass
class JudgeSummary:
    """Counts over the whole output file (earlier runs included) and this run's provenance."""

    examples: int
    """Examples in the input file."""
    written: int
    """Lines in the output file (== examples when complete)."""
    judged_this_run: int
    skipped_already_done: int
    judgments: int
    parse_failures: int
    """Judgments that still did not parse after their retries."""
    retries: int
    """Extra attempts spent re-sampling unparseable outputs."""
    no_verdict: int
    """Examples without a verdict (every judgment failed)."""
    consistent: int | None
    inconsistent: int | None
    seconds: float
    output: str
    summary_path: str
    provenance: dict[str, Any]

    @property
    def parse_rate(self) -> float | None:
        return None if not self.judgments else 1 - self.parse_failures / self.judgments

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parse_rate": self.parse_rate}

    def format(self) -> str:
        rate = "n/a" if self.parse_rate is None else f"{self.parse_rate:.1%}"
        lines = [
            f"examples: {self.examples} (judged now: {self.judged_this_run}, "
            f"already done: {self.skipped_already_done}, written: {self.written})",
            f"judgments: {self.judgments}, parse failures: {self.parse_failures} "
            f"(parse rate {rate}), retries: {self.retries}, no verdict: {self.no_verdict}",
        ]
        if self.consistent is not None:
            lines.append(f"order-consistent: {self.consistent}, inconsistent: {self.inconsistent}")
        lines.append(f"output: {self.output}  summary: {self.summary_path}  ({self.seconds:.1f}s)")
        return "\n".join(lines)


def summary_path(output_path: str | Path) -> Path:
    """``y.jsonl`` -> ``y.summary.json``."""
    return Path(output_path).with_suffix(".summary.json")


def _sample_dict(j: Judgment) -> dict[str, Any]:
    return {
        "sample_index": j.sample_index,
        "verdict": j.verdict,
        "rationale": j.rationale,
        "parse_error": j.parse_error,
        "raw": j.raw,
        "attempts": j.attempts,
        "temperature": j.temperature,
        "seed": j.seed,
        **({"meta": j.meta} if j.meta else {}),
    }


def _counts(judgments: list[Judgment]) -> dict[str, int]:
    return {
        "judgments": len(judgments),
        "parse_failures": sum(not j.ok for j in judgments),
        "retries": sum(j.attempts - 1 for j in judgments),
    }


def _record(ex: Example, result: Grade | Comparison, samples: int) -> dict[str, Any]:
    """One output line; see the module docstring."""
    js = result.judgments
    verdict = result.verdict
    rec: dict[str, Any] = {"id": ex.id, "kind": ex.kind, "verdict": verdict}
    if samples == 1:
        j = js[0]
        rec.update(rationale=j.rationale, parse_error=j.parse_error, raw=j.raw, attempts=j.attempts)
    else:
        errors = [j.parse_error for j in js if j.parse_error]
        rec.update(
            rationale=result.rationale,
            parse_error=None if verdict is not None else f"no sample parsed (first: {errors[0]})",
            mean=mean_verdict(j.verdict for j in js),
            samples=[_sample_dict(j) for j in js],
        )
    if isinstance(result, Comparison) and result.swapped_judgments:
        if verdict is None and rec["parse_error"] is None:
            rec["parse_error"] = "no judgment parsed in either order"
        rec.update(
            consistent=result.consistent,
            verdict_original_order=result.majority,
            verdict_swapped_order=result.swapped_majority,
            swapped_samples=[_sample_dict(j) for j in result.swapped_judgments],
        )
    if isinstance(result, Grade) and result.score_probs is not None:
        rec.update(expected_score=result.expected_score, score_probs=result.score_probs)
    rec["model"] = js[0].model
    rec["template_id"] = js[0].template_id
    rec["counts"] = _counts(js + getattr(result, "swapped_judgments", []))
    return rec


def _check_ids(examples: list[Example], path: str | Path) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise ValueError(f"{path}: id {ex.id!r} appears twice; ids must be unique to resume")
        seen.add(ex.id)


def _file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def judge_file(
    input_path: str | Path,
    output_path: str | Path,
    judge_or_backend: Judge | Backend,
    *,
    samples: int = 1,
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int = 512,
    seed: int = 0,
    max_retries: int = 2,
    both_orders: bool = False,
    score_only: bool = False,
    expected_score: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> JudgeSummary:
    """Judge every example of a srjudge JSONL into ``output_path``, resumably.

    Examples whose id is already in ``output_path`` are skipped, so rerunning after a crash
    or ``kill -9`` finishes the file with every id exactly once. ``both_orders`` applies to
    pairwise examples, ``expected_score`` to pointwise ones. ``provenance`` is merged into the
    summary's provenance (the CLI adds the backend kind and model as given).
    """
    started = time.time()
    examples = load_examples(input_path)
    _check_ids(examples, input_path)
    backend = judge_or_backend.backend if isinstance(judge_or_backend, Judge) else judge_or_backend
    judge = Judge(backend, max_retries=max_retries, batch_size=batch_size, progress=False)
    params = Judge.params(samples, temperature, top_p, max_new_tokens, seed)
    common = dict(
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        score_only=score_only,
    )
    with ResumableJSONL(output_path) as out:
        todo = [ex for ex in examples if ex.id not in out.done]
        skipped = len(examples) - len(todo)
        with progress_bar(len(todo), progress, "judging") as bar:
            for chunk in batched(todo, batch_size):
                points = [ex for ex in chunk if isinstance(ex, PointwiseExample)]
                pairs = [ex for ex in chunk if isinstance(ex, PairwiseExample)]
                results: dict[str, Grade | Comparison] = {}
                if points:
                    grades = judge.grade_batch(points, expected_score=expected_score, **common)
                    results.update((g.example_id, g) for g in grades)
                if pairs:
                    comparisons = judge.compare_batch(pairs, both_orders=both_orders, **common)
                    results.update((c.example_id, c) for c in comparisons)
                for ex in chunk:  # input order
                    out.append(_record(ex, results[ex.id], samples))
                bar.update(len(chunk))
    kinds = sorted({ex.kind for ex in examples})
    templates = {
        tid: template_hash(tid)
        for tid in (judge_template_id(k, score_only=score_only) for k in kinds)
    }
    info = {
        "model": backend.name,
        "templates": templates,
        "params": asdict(params),
        "samples": samples,
        "max_retries": max_retries,
        "both_orders": both_orders,
        "score_only": score_only,
        "expected_score": expected_score,
        "batch_size": batch_size,
        "seed": seed,
        "input": str(input_path),
        "input_sha256": _file_sha256(input_path),
        "srjudge_version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(provenance or {}),
    }
    return _summarize(output_path, len(examples), len(todo), skipped, time.time() - started, info)


def _summarize(
    output_path: str | Path,
    n_examples: int,
    judged: int,
    skipped: int,
    seconds: float,
    provenance: dict[str, Any],
) -> JudgeSummary:
    """Counts over every line of the output file, written to the summary file."""
    rows = list(read_jsonl(output_path))
    consistency = [r["consistent"] for r in rows if "consistent" in r]
    summary = JudgeSummary(
        examples=n_examples,
        written=len(rows),
        judged_this_run=judged,
        skipped_already_done=skipped,
        judgments=sum(r["counts"]["judgments"] for r in rows),
        parse_failures=sum(r["counts"]["parse_failures"] for r in rows),
        retries=sum(r["counts"]["retries"] for r in rows),
        no_verdict=sum(r["verdict"] is None for r in rows),
        consistent=sum(c is True for c in consistency) if consistency else None,
        inconsistent=sum(c is False for c in consistency) if consistency else None,
        seconds=round(seconds, 2),
        output=str(output_path),
        summary_path=str(summary_path(output_path)),
        provenance=provenance,
    )
    path = summary_path(output_path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return summary
