"""Judging benchmark items into prediction records, one function per benchmark task.

``TASKS[bench.task](judge, examples, opts)`` returns one record per example: ``grade``
(pointwise score), ``grade_pair`` (both responses of a pair scored separately), ``compare``
(pairwise, both orders) and ``compare_styles`` (RM-Bench: each of a prompt's 9 style pairs
compared in both orders; the record holds one entry per cell in ``cells``). A record holds
the verdicts, the rationale, ``score`` or ``pred`` for the metrics, and ``judgments`` /
``parse_failures`` counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from srjudge.data.judge_benchmarks import style_pairs
from srjudge.evaluation.metrics import Record, as_number, both_orders_correct
from srjudge.judging.judge import Comparison, Grade, Judge
from srjudge.records import Example, PairwiseExample, PointwiseExample

# ---------------------------------------------------------------------------------------
# judging items into prediction records


@dataclass(frozen=True)
class JudgeOptions:
    samples: int = 1
    seed: int = 0
    max_new_tokens: int = 512
    expected_score: bool = False
    score_only: bool = False
    """Judge with the score-only prompts (judges trained without rationales)."""


def _grade_fields(g: Grade) -> Record:
    return {
        "verdict": g.verdict,
        "pred": g.mean,
        "expected_score": g.expected_score,
        "score_probs": g.score_probs,
        "rationale": g.rationale,
        "raw": None if g.verdict is not None else g.judgments[0].raw,
        "parse_errors": [j.parse_error for j in g.judgments if j.parse_error],
        "judgments": len(g.judgments),
        "parse_failures": g.parse_failures,
    }


def _grade(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Grade]:
    return judge.grade_batch(
        examples,  # type: ignore[arg-type]
        samples=opts.samples,
        seed=opts.seed,
        max_new_tokens=opts.max_new_tokens,
        expected_score=opts.expected_score,
        score_only=opts.score_only,
    )


def _graded_records(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Record]:
    out = []
    for ex, g in zip(examples, _grade(judge, examples, opts), strict=True):
        rec = _grade_fields(g)
        rec["pred_expected"] = rec["expected_score"]
        gpt4 = ex.meta.get("gpt4_score")
        rec |= {"gold": ex.gold_score, "gpt4": gpt4 if isinstance(gpt4, int | float) else None}
        out.append(rec)
    return out


def _side(ex: PairwiseExample, chosen: bool) -> PointwiseExample:
    gold = 1 if ex.gold_preference in (1, None) else 2
    first = (gold == 1) == chosen
    return PointwiseExample(
        id=f"{ex.id}#{'chosen' if chosen else 'rejected'}",
        context=list(ex.context),
        response=ex.response_1 if first else ex.response_2,
        rubric=ex.rubric,
        source=ex.source,
        meta={"pair_id": ex.id},
    )


def _pair_score(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 1.0 if a > b else 0.0 if a < b else 0.5


def _pair_records(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Record]:
    sides = [_side(ex, c) for ex in examples for c in (True, False)]  # type: ignore[arg-type]
    grades = _grade(judge, sides, opts)
    out = []
    for i, _ in enumerate(examples):
        gc, gr = grades[2 * i], grades[2 * i + 1]
        score = _pair_score(gc.verdict, gr.verdict)
        expected = score
        if score == 0.5 and gc.expected_score is not None and gr.expected_score is not None:
            expected = _pair_score(gc.expected_score, gr.expected_score)
        out.append(
            {
                "chosen": _grade_fields(gc),
                "rejected": _grade_fields(gr),
                "score": 0.0 if score is None else score,
                "score_expected": None if gc.expected_score is None else as_number(expected),
                "gold": 1,
                "judgments": len(gc.judgments) + len(gr.judgments),
                "parse_failures": gc.parse_failures + gr.parse_failures,
            }
        )
    return out


def _order_score(verdict: int | None, gold: Any) -> float | None:
    return None if verdict is None else float(verdict == gold)


def _comparison_record(ex: PairwiseExample, c: Comparison) -> Record:
    gold = ex.gold_preference
    votes = [_order_score(v, gold) for v in (c.majority, c.swapped_majority)]
    votes = [v for v in votes if v is not None]
    score = None if gold == "tie" else (sum(votes) / len(votes) if votes else 0.0)
    return {
        "verdict": c.verdict,
        "verdict_original_order": c.majority,
        "verdict_swapped_order": c.swapped_majority,
        "consistent": c.consistent,
        "gold": gold,
        "score": score,
        "rationale": c.rationale,
        "judgments": len(c.judgments) + len(c.swapped_judgments),
        "parse_failures": c.parse_failures,
    }


def _compare_both(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Comparison]:
    return judge.compare_batch(
        examples,  # type: ignore[arg-type]
        samples=opts.samples,
        both_orders=True,
        seed=opts.seed,
        max_new_tokens=opts.max_new_tokens,
        score_only=opts.score_only,
    )


def _compare_records(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Record]:
    results = _compare_both(judge, examples, opts)
    return [_comparison_record(ex, c) for ex, c in zip(examples, results, strict=True)]  # type: ignore[arg-type]


def _cell_record(i: int, j: int, c: Comparison) -> Record:
    return {
        "chosen_style": i,
        "rejected_style": j,
        "verdict_original_order": c.majority,
        "verdict_swapped_order": c.swapped_majority,
        "consistent": c.consistent,
        "correct": both_orders_correct(c.majority, c.swapped_majority, 1),
        "rationale": c.rationale,
        "judgments": len(c.judgments) + len(c.swapped_judgments),
        "parse_failures": c.parse_failures,
    }


def _style_records(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Record]:
    """RM-Bench: all cells of all ``examples`` in one batch (9 pairs x 2 orders per prompt)."""
    cells = [style_pairs(ex) for ex in examples]  # type: ignore[arg-type]
    flat = [pair for grid in cells for _, _, pair in grid]
    results = iter(_compare_both(judge, flat, opts))  # type: ignore[arg-type]
    out = []
    for grid in cells:
        rows = [_cell_record(i, j, next(results)) for i, j, _ in grid]
        out.append(
            {
                "cells": rows,
                "score": sum(r["correct"] for r in rows) / len(rows),
                "gold": 1,
                "judgments": sum(r["judgments"] for r in rows),
                "parse_failures": sum(r["parse_failures"] for r in rows),
            }
        )
    return out


TASKS = {
    "grade": _graded_records,
    "grade_pair": _pair_records,
    "compare": _compare_records,
    "compare_styles": _style_records,
}
