"""Pairwise training data derived from pointwise gold scores, and question-level splits.

pairs = derive_pairwise(pointwise, min_gap=1.0, seed=0)    # same question, scores differ
train, heldout = split_by_question(examples, 0.15, seed=0)  # whole questions on one side
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable

from srjudge.data.fields import coin, question_key
from srjudge.records import (
    Example,
    PairwiseExample,
    PointwiseExample,
    Rubric,
    to_dict,
)

# ---------------------------------------------------------------------------------------
# pairwise derivation and held-out splits


def pairwise_rationale(feedback_1: str, feedback_2: str, winner: int) -> str:
    """The gold rationale of a derived pair: both feedbacks, then the verdict.

    >>> pairwise_rationale("Clear.", "Vague.", 1)
    'RESPONSE 1: Clear.\\nRESPONSE 2: Vague.\\nTherefore RESPONSE 1 better meets the criteria.'
    """
    return (
        f"RESPONSE 1: {feedback_1.strip()}\nRESPONSE 2: {feedback_2.strip()}\n"
        f"Therefore RESPONSE {winner} better meets the criteria."
    )


def _pair_key(a: PointwiseExample) -> tuple[str, str, Rubric]:
    # Same question, same conversation and same rubric: MT-Bench's second turns share the
    # question but not the assistant's first turn, so those are not paired.
    return question_key(a), json.dumps([to_dict(m) for m in a.context]), a.rubric


def derive_pairwise(
    examples: Iterable[PointwiseExample],
    *,
    min_gap: float = 1.0,
    seed: int = 0,
    max_pairs_per_question: int | None = None,
) -> list[PairwiseExample]:
    """Pairwise examples from pointwise ones answering the same question (the demo's pair data).

    Two responses pair when they share ``question_key``, the whole context and the rubric, and
    their gold scores differ by at least ``min_gap``; examples without a gold score are skipped.
    Which response is shown first is a coin flip per pair (``seed``), and the gold preference is
    the higher-scored side. The gold rationale joins the two gold rationales
    (``pairwise_rationale``: "RESPONSE 1: ... RESPONSE 2: ... Therefore RESPONSE k better meets
    the criteria.") and is None when either is missing. With ``max_pairs_per_question`` only
    the pairs with the largest gaps are kept (ties by id). Output is deterministic.
    """
    if min_gap <= 0:
        raise ValueError(f"min_gap must be > 0 (equal scores give no preference), got {min_gap}")
    groups: dict[tuple[str, str, Rubric], list[PointwiseExample]] = {}
    for ex in examples:
        if ex.gold_score is not None:
            groups.setdefault(_pair_key(ex), []).append(ex)
    out: list[PairwiseExample] = []
    for members in groups.values():
        pairs = [
            (abs(a.gold_score - b.gold_score), a, b)  # type: ignore[operator]
            for i, a in enumerate(members)
            for b in members[i + 1 :]
            if abs(a.gold_score - b.gold_score) >= min_gap  # type: ignore[operator]
        ]
        pairs.sort(key=lambda t: (-t[0], t[1].id, t[2].id))
        out += [_make_pair(a, b, seed) for _, a, b in pairs[:max_pairs_per_question]]
    return out


def _make_pair(a: PointwiseExample, b: PointwiseExample, seed: int) -> PairwiseExample:
    first, second = (b, a) if coin(seed, f"{a.id}|{b.id}") else (a, b)
    winner = 1 if first.gold_score > second.gold_score else 2  # type: ignore[operator]
    rationale = None
    if first.gold_rationale and second.gold_rationale:
        rationale = pairwise_rationale(first.gold_rationale, second.gold_rationale, winner)
    return PairwiseExample(
        id=f"{first.id}~{second.id}",
        context=list(first.context),
        response_1=first.response,
        response_2=second.response,
        rubric=first.rubric,
        gold_preference=winner,
        gold_rationale=rationale,
        source=first.source,
        meta={
            "question_id": question_key(first),
            "derived_from": [first.id, second.id],
            "gold_scores": [first.gold_score, second.gold_score],
            "reference_answer": first.reference_answer,
            "pair_seed": seed,
        },
    )


def split_by_question(
    examples: Iterable[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, heldout) with whole questions (``question_key``) on one side only.

    ``round(eval_fraction * n_questions)`` questions, drawn with ``seed``, are held out; both
    lists keep the input order.
    """
    if not 0 <= eval_fraction <= 1:
        raise ValueError(f"eval_fraction must be in [0, 1], got {eval_fraction}")
    items = list(examples)
    keys = sorted({question_key(ex) for ex in items})
    random.Random(seed).shuffle(keys)
    held = set(keys[: round(eval_fraction * len(keys))])
    train = [ex for ex in items if question_key(ex) not in held]
    heldout = [ex for ex in items if question_key(ex) in held]
    return train, heldout
