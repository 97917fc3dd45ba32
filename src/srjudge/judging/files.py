"""``judge_file``: judge every example of a data file into a JSONL, resumably.

    summary = judge_file("x.jsonl", "y.jsonl", Judge.load("smollm2-135m"), samples=5)
    srjudge judge --model smollm2-135m --input x.jsonl --output y.jsonl --samples 5

Output: one JSON line per example, in input order::

    {"id": "mt-1", "kind": "pointwise", "verdict": 4, "rationale": "...", "parse_error": null,
     "raw": "...", "attempts": 1, "counts": {"judgments": 1, "parse_failures": 0, "retries": 0}}

with ``samples`` (each judgment) and ``mean`` when samples > 1; ``consistent``,
``verdict_original_order``, ``verdict_swapped_order`` and ``swapped_samples`` (verdicts as
the model gave them, in the swapped order) with ``both_orders``; ``expected_score`` and
``score_probs`` with ``expected_score``, and ``input_sha256``, the hash of the example judged.
The file is written through ``ResumableJSONL``, so a killed run continues on rerun;
``<output stem>.summary.json`` holds the counts over the whole file and the provenance
(``JudgeSummary``).

The input is read by ``srjudge.data`` (JSONL, JSON arrays, ``.gz``: what ``srjudge data
validate`` accepts); a bad row refuses the whole file with its file, line and field. Nothing
is mixed or lost: the output may not be the input, an existing output must be one that
``judge`` wrote (``check_paths``), and a rerun must use the settings it was started with
(``<output stem>.settings.json``: model, templates, sampling) and the same input rows under
the same ids, or it is refused saying what differs, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from srjudge import __version__
from srjudge.data.sources import load
from srjudge.errors import UserError
from srjudge.judging.backends import Backend
from srjudge.judging.judge import Comparison, Grade, Judge, mean_verdict
from srjudge.judging.prompts import judge_template_id, template_hash
from srjudge.judging.sampling import DEFAULT_BATCH_SIZE, batched, progress_bar
from srjudge.paths import (
    json_object_has,
    refuse_foreign_file,
    refuse_same_paths,
    require_file,
)
from srjudge.records import (
    Example,
    Judgment,
    PairwiseExample,
    PointwiseExample,
    example_hash,
    read_jsonl,
)
from srjudge.resume import ResumableJSONL

log = logging.getLogger(__name__)

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


def settings_path(output_path: str | Path) -> Path:
    """``y.jsonl`` -> ``y.settings.json`` (what the file was started with)."""
    return Path(output_path).with_suffix(".settings.json")


_OUTPUT_KEYS = ("id", "kind", "verdict", "counts")


def check_paths(input_path: str | Path, output_path: str | Path) -> None:
    """Refuse, before anything is loaded or written: a missing or special input, an output
    (or its summary/settings file) that is the input, and an existing output that ``judge``
    did not write."""
    require_file(input_path, "--input")
    outputs = {
        "--output": output_path,
        "its summary file": summary_path(output_path),
        "its settings file": settings_path(output_path),
    }
    refuse_same_paths({"--input": input_path}, outputs)
    refuse_foreign_file(output_path, "--output", "a judgments file (srjudge judge)", _is_output)
    refuse_foreign_file(
        summary_path(output_path),
        "summary file",
        "a judge summary",
        lambda p: json_object_has(p, ("examples", "provenance")),
    )


def _is_output(path: Path) -> bool:
    """A file ``judge`` wrote: its settings file exists, every line is an output record."""
    if not settings_path(path).is_file():
        return False
    lines = path.read_bytes().split(b"\n")  # the last line may be torn by a kill: not checked
    complete = b"\n".join(lines[:-1])
    return all(
        isinstance(obj, dict) and all(k in obj for k in _OUTPUT_KEYS)
        for obj in (json.loads(line) for line in complete.splitlines() if line.strip())
    )


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
    rec["input_sha256"] = example_hash(ex)
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
    check_paths(input_path, output_path)
    loaded = load(input_path, "srjudge")
    for warning in loaded.warnings:
        log.warning("%s", warning)
    examples = loaded.strict()
    _check_ids(examples, input_path)
    backend = judge_or_backend.backend if isinstance(judge_or_backend, Judge) else judge_or_backend
    judge = Judge(backend, max_retries=max_retries, batch_size=batch_size, progress=False)
    params = Judge.params(samples, temperature, top_p, max_new_tokens, seed)
    settings = {
        "model": backend.name,
        "templates": _templates(score_only),
        "params": asdict(params),
        "samples": samples,
        "max_retries": max_retries,
        "both_orders": both_orders,
        "score_only": score_only,
        "expected_score": expected_score,
    }
    common = dict(
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        score_only=score_only,
    )
    resumable = ResumableJSONL(output_path, settings=settings, fingerprint="input_sha256")
    with resumable as out:
        _refuse_other_input(out, examples)
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
    kinds = {judge_template_id(ex.kind, score_only=score_only) for ex in examples}
    info = {
        **settings,
        "templates": {tid: h for tid, h in settings["templates"].items() if tid in kinds},
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


def _templates(score_only: bool) -> dict[str, str]:
    """Template id -> content hash of both judge templates (pointwise, pairwise)."""
    ids = (judge_template_id(k, score_only=score_only) for k in ("pointwise", "pairwise"))
    return {tid: template_hash(tid) for tid in ids}


def _refuse_other_input(out: ResumableJSONL, examples: list[Example]) -> None:
    """A resumed output must hold only ids of this input, each judged from the same row."""
    ids = {ex.id for ex in examples}
    extra = sorted(out.done - ids)
    if extra:
        shown = ", ".join(repr(i) for i in extra[:3]) + (", ..." if len(extra) > 3 else "")
        raise UserError(
            f"{out.path} holds {len(extra)} id(s) that are not in the input ({shown}): it was "
            "started on another input, and resuming would mix them; nothing was changed. "
            "Use another --output"
        )
    out.refuse_changed({ex.id: example_hash(ex) for ex in examples})


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
