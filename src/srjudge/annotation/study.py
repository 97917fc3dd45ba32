"""Build a blind side-by-side study from two models' predictions (``srjudge annotate create``).

    from srjudge.annotation.study import create_study
    counts = create_study("ev/sft", "ev/iter2", "study.db", seed=0)

    srjudge annotate create --a runs/demo/stages/11_eval_sft \
        --b runs/demo/stages/13_eval_iter2_dpo --out study.db [--all] [--limit K] [--seed S]

Selection, as in the paper (section 4, appendix A.2): an item is kept when both models gave a
parsed verdict and a rationale, and, unless ``keep_all``, the *same* verdict, so annotators
compare rationales rather than verdicts. Items left out are counted by reason, never silently.
``limit`` then draws K of them with the seed. The order of the items, and for each item which
model's rationale is shown as "Rationale 1", are drawn from the same seed; that assignment is
stored in the study database only, never sent to a browser.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srjudge.annotation import store
from srjudge.annotation.deps import Example, __version__
from srjudge.annotation.inputs import (
    Judged,
    Predictions,
    StudyInputError,
    check_same_items,
    read_predictions,
    resolve_examples,
    shown_response,
)


@dataclass(frozen=True)
class Candidate:
    key: str
    a: Judged
    b: Judged
    example: Example


def exclusion_reason(a: Judged, b: Judged, keep_all: bool) -> str | None:
    """Why an item is left out of the study, or None to keep it.

    >>> j = Judged("x", "x", None, None, "pointwise", 4, "fine", 1)
    >>> exclusion_reason(j, j, False) is None
    True
    >>> exclusion_reason(j, Judged("x", "x", None, None, "pointwise", 3, "ok", 1), False)
    'different verdicts'
    """
    if a.verdict is None or b.verdict is None:
        return "no parsed verdict"
    if not a.rationale or not b.rationale:
        return "no rationale"
    if not keep_all and a.verdict != b.verdict:
        return "different verdicts"
    return None


def select(
    candidates: Sequence[Candidate], *, keep_all: bool, limit: int | None, seed: int
) -> tuple[list[Candidate], Counter]:
    """(kept items in study order, counts of items left out by reason)."""
    dropped: Counter = Counter()
    kept = []
    for c in sorted(candidates, key=lambda c: c.key):
        reason = exclusion_reason(c.a, c.b, keep_all)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(c)
    rng = random.Random(seed)
    rng.shuffle(kept)
    if limit is not None and len(kept) > limit:
        dropped["over --limit"] += len(kept) - limit
        kept = kept[:limit]
    return kept, dropped


def _payload(c: Candidate) -> dict[str, Any]:
    ex = c.example
    rubric = ex.rubric
    out: dict[str, Any] = {
        "mode": c.a.mode,
        "criteria": rubric.criteria,
        "score_descriptions": list(rubric.score_descriptions),
        "context": [{"role": m.role, "content": m.content} for m in ex.context],
        **shown_response(ex, c.a.side),
    }
    reference = getattr(ex, "reference_answer", None)
    if reference:
        out["reference_answer"] = reference
    return out


def plan_items(kept: Sequence[Candidate], seed: int) -> list[store.NewItem]:
    """Study items in order, each with its sides drawn from ``seed`` (independent of order)."""
    rng = random.Random(f"sides:{seed}")
    items = []
    for position, c in enumerate(kept, 1):
        first = rng.choice(("a", "b"))
        one, two = (c.a, c.b) if first == "a" else (c.b, c.a)
        items.append(
            store.NewItem(
                uid=secrets.token_hex(8),
                position=position,
                key=c.key,
                payload=_payload(c),
                rationale_1=one.rationale or "",
                rationale_2=two.rationale or "",
                verdict_1=one.verdict or 0,
                verdict_2=two.verdict or 0,
                first=first,
            )
        )
    return items


def create_study(
    a_path: str | Path,
    b_path: str | Path,
    out: str | Path,
    *,
    keep_all: bool = False,
    limit: int | None = None,
    seed: int = 0,
    examples: list[str | Path] | None = None,
    label_a: str | None = None,
    label_b: str | None = None,
) -> dict[str, Any]:
    """Check both files, select and randomise items, write ``out`` (refused if it exists).

    Returns the counts also stored in the study: items judged, kept, left out by reason.
    """
    if Path(out).exists():
        raise StudyInputError(f"{out} already exists; a study is never overwritten")
    if limit is not None and limit < 1:
        raise StudyInputError(f"--limit must be at least 1, got {limit}")
    a, b = read_predictions(a_path), read_predictions(b_path)
    check_same_items(a, b)
    found = resolve_examples(a, b, examples)
    candidates = [Candidate(k, a.items[k], b.items[k], found[k]) for k in a.items]
    kept, dropped = select(candidates, keep_all=keep_all, limit=limit, seed=seed)
    if not kept:
        raise StudyInputError(
            f"no item left to annotate ({dict(dropped)}); try --all to keep items where the "
            "verdicts differ"
        )
    counts = {"judged": len(candidates), "kept": len(kept), "left_out": dict(dropped)}
    meta = _meta(a, b, label_a, label_b, keep_all, limit, seed, counts)
    store.create(out, meta, plan_items(kept, seed))
    return counts


def _meta(
    a: Predictions,
    b: Predictions,
    label_a: str | None,
    label_b: str | None,
    keep_all: bool,
    limit: int | None,
    seed: int,
    counts: dict[str, Any],
) -> dict[str, Any]:
    name_a, name_b = label_a or a.label, label_b or b.label
    if name_a == name_b:  # e.g. two judge outputs both called out.jsonl
        name_a, name_b = f"{name_a} (A)", f"{name_b} (B)"
    return {
        "study_id": secrets.token_hex(8),
        "label_a": name_a,
        "label_b": name_b,
        "path_a": str(a.path),
        "path_b": str(b.path),
        "format": a.format,
        "selection": "all" if keep_all else "same verdict",
        "limit": limit,
        "seed": seed,
        "counts": counts,
        "srjudge_version": __version__,
    }
