"""Preference curation (paper 3.3): sampled judgments -> DPO pairs, each with why it was kept.

Pure functions: no model calls, no I/O. The model calls some strategies need (meta-judge
ratings, best/worst picks, low-quality rationales) live in ``srjudge.training.metajudge``;
their results come in as plain arguments, so curation can be rerun and audited offline.

    cfg = CurationConfig("correct_answer", margin=2, max_pairs_per_input=20, seed=0)
    pairs, stats = curate_all([(example, judgments, {}) for example, judgments in sampled], cfg)

Strategies (``STRATEGIES``, name -> function; extra inputs in brackets):

``correct_answer``       chosen verdict == gold, rejected any other judgment, |gap| >= margin
``majority_vote``        chosen from the (unique) most frequent verdict, rejected from the rest
``meta_judge``           [ratings] chosen rated higher than rejected by the A.1.4 meta-judge
``rationale_meta``       [best_worst] one pair: the A.1.6 meta-judge's best and worst rationale
``preference_reversal``  [low_quality] ablation: a low-quality rationale is the *chosen* one

A pair (``records.PreferencePair``)::

    {"example_id": "fb-7", "prompt": [<judge_prompt(example)>], "chosen": "... [RESULT] 4",
     "rejected": "... [RESULT] 1", "chosen_verdict": 4, "rejected_verdict": 1,
     "strategy": "correct_answer",
     "reason": "chosen verdict 4 == gold 4; rejected 1; margin 3 >= 2",
     "meta": {"rule": "correct_vs_wrong", "chosen_index": 2, "rejected_index": 7, "margin": 3,
              "min_margin": 2, "gold": 4}}

Rules where the paper is silent (each pinned by ``tests/test_curate.py``):

* Unparseable judgments (``not Judgment.ok``) never enter a pair; ``curate`` counts them.
* Gold: pointwise gold scores that are means (3.67) are rounded half-up (2.5 -> 3); pairwise
  gold is 1 or 2, and a gold "tie" gives no pairs (counted as ``gold_tie``).
* Pairwise margins: verdicts are 1 or 2, so two different verdicts differ by exactly 1 and a
  margin of 2 would yield nothing. The margin is capped at 1 there: any margin >= 1 means
  "the rejected picked the other response"; 0 also admits same-verdict pairs.
* Margin 0 (paper: same score, different rationale): a same-verdict pair would be emitted in
  both directions, which contradict each other. It is emitted once, the earlier sample chosen;
  that order carries no quality signal (``rule: same_verdict``), so for the paper's margin-0
  setting rank rationales with ``rationale_meta`` instead. Chosen and rejected texts always differ.
* Majority vote: the majority is the unique most frequent verdict (a plurality, not > 50%); a
  tie for most frequent gives no pairs (``majority_tie``). Rejected must differ from the
  majority verdict by >= max(margin, 1).
* ``best_worst`` item numbers are 1-based positions in ``usable(judgments)``, the list the
  meta-judge was shown (``metajudge.pick_best_worst`` uses the same function).
* ``low_quality`` holds rationales without a verdict (``metajudge.write_low_quality``); the
  chosen text is ``rationale + " [RESULT] " + gold``, the rejected the judge's own judgments
  whose verdict equals the gold, so both sides carry the gold verdict (margin 0).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any, NamedTuple

from srjudge.judging.parsing import BestWorst
from srjudge.judging.prompts import judge_prompt
from srjudge.records import Example, Judgment, PairwiseExample, PreferencePair
from srjudge.training.settings import Problem, raise_problems, range_problems

# ---------------------------------------------------------------------------------------
# helpers


def usable(judgments: Iterable[Judgment]) -> list[Judgment]:
    """The judgments that parsed; the only ones a pair (or a meta-judge prompt) may use."""
    return [j for j in judgments if j.ok]


def gold_verdict(example: Example) -> int | str | None:
    """The verdict a correct judgment gives: 1..5, 1/2, "tie", or None without a gold label.

    >>> from srjudge.records import PointwiseExample, Rubric
    >>> ex = PointwiseExample("a", [], "r", Rubric("c", ("1", "2", "3", "4", "5")), gold_score=2.5)
    >>> gold_verdict(ex)
    3
    """
    if isinstance(example, PairwiseExample):
        return example.gold_preference
    if example.gold_score is None:
        return None
    # Half-up, not Python's round(): round(2.5) == 2 would bias means of raters downwards.
    return math.floor(example.gold_score + 0.5)


def effective_margin(example: Example, margin: int) -> int:
    """The margin actually applied: pairwise verdicts differ by at most 1, so cap it there."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return min(margin, 1) if isinstance(example, PairwiseExample) else margin


def _text(j: Judgment) -> str:
    return j.raw.strip()


PairMaker = Callable[..., PreferencePair]


def _pair_maker(example: Example, strategy: str) -> PairMaker:
    """``make(chosen, rejected, rule, reason, **meta)`` for one input; renders the prompt once."""
    prompt = judge_prompt(example)

    def make(
        chosen: Judgment, rejected: Judgment, rule: str, reason: str, **meta: Any
    ) -> PreferencePair:
        return PreferencePair(
            example_id=example.id,
            prompt=list(prompt),
            chosen=_text(chosen),
            rejected=_text(rejected),
            chosen_verdict=chosen.verdict,
            rejected_verdict=rejected.verdict,
            strategy=strategy,
            reason=reason,
            meta={
                "rule": rule,
                "chosen_index": chosen.sample_index,
                "rejected_index": rejected.sample_index,
                "margin": abs(chosen.verdict - rejected.verdict),  # type: ignore[operator]
                **meta,
            },
        )

    return make


@dataclass(frozen=True)
class Outcome:
    """What a strategy made of one input: its pairs, or (when none) why not."""

    pairs: list[PreferencePair]
    skipped: str | None = None
    meta_failures: int = 0
    """Usable judgments the meta-judge could not rate (None), or a failed best/worst pick."""


def _no_pairs_reason(ok: list[Judgment]) -> str:
    if len(ok) == 1:
        return "single"
    if len({j.verdict for j in ok}) == 1:
        return "all_equal"
    return "below_margin"


def _gold_problem(example: Example, ok: list[Judgment]) -> str | None:
    """Why a gold-based strategy cannot start: no judgments, no gold, a tie, none correct."""
    gold = gold_verdict(example)
    if not ok:
        return "no_usable"
    if gold is None:
        return "no_gold"
    if gold == "tie":
        return "gold_tie"
    if not any(j.verdict == gold for j in ok):
        return "no_correct"
    return None


# ---------------------------------------------------------------------------------------
# strategies: each returns an Outcome; the public *_pairs functions return just the pairs


def _correct_answer(example: Example, judgments: Sequence[Judgment], margin: int) -> Outcome:
    ok = usable(judgments)
    min_margin = effective_margin(example, margin)  # validates margin even when skipping
    if problem := _gold_problem(example, ok):
        return Outcome([], problem)
    gold = gold_verdict(example)
    capped = f" (pairwise: margin {margin} capped at 1)" if min_margin != margin else ""
    make, pairs = _pair_maker(example, "correct_answer"), []
    for i, chosen in enumerate(ok):
        if chosen.verdict != gold:
            continue
        for k, rejected in enumerate(ok):
            gap = abs(chosen.verdict - rejected.verdict)  # type: ignore[operator]
            # Same-verdict pairs (margin 0) once only, earlier sample chosen: see module doc.
            if k == i or gap < min_margin or (gap == 0 and k < i):
                continue
            if _text(chosen) == _text(rejected):
                continue
            rule = "correct_vs_wrong" if gap else "same_verdict"
            reason = f"chosen verdict {chosen.verdict} == gold {gold}; rejected {rejected.verdict}"
            reason += f"; margin {gap} >= {min_margin}{capped}"
            if not gap:
                reason += "; both correct: the earlier sample is chosen (no quality signal)"
            pairs.append(make(chosen, rejected, rule, reason, min_margin=min_margin, gold=gold))
    return Outcome(pairs, None if pairs else _no_pairs_reason(ok))


def _majority_vote(example: Example, judgments: Sequence[Judgment], margin: int) -> Outcome:
    ok = usable(judgments)
    # Non-majority verdicts differ from the majority by definition, hence at least 1.
    min_margin = max(effective_margin(example, margin), 1)
    if len(ok) < 2:
        return Outcome([], "no_usable" if not ok else "single")
    counts = _verdict_counts(ok)
    if len(counts) == 1:
        return Outcome([], "all_equal")
    (top, n_top), (_, n_second) = counts[0], counts[1]
    if n_top == n_second:
        return Outcome([], "majority_tie")
    make, pairs = _pair_maker(example, "majority_vote"), []
    by_verdict, rule = dict(counts), "majority_vs_minority"
    for chosen in (j for j in ok if j.verdict == top):
        for rejected in (j for j in ok if j.verdict != top):
            gap = abs(top - rejected.verdict)  # type: ignore[operator]
            if gap < min_margin or _text(chosen) == _text(rejected):
                continue
            reason = (
                f"chosen verdict {top} is the majority ({n_top}/{len(ok)}); rejected "
                f"{rejected.verdict} ({by_verdict[rejected.verdict]}/{len(ok)}); "
                f"margin {gap} >= {min_margin}"
            )
            pairs.append(make(chosen, rejected, rule, reason, min_margin=min_margin, majority=top))
    return Outcome(pairs, None if pairs else "below_margin")


def _verdict_counts(ok: list[Judgment]) -> list[tuple[int, int]]:
    """(verdict, count), most frequent first; ties in count by verdict, for determinism."""
    counts: dict[int, int] = {}
    for j in ok:
        counts[j.verdict] = counts.get(j.verdict, 0) + 1  # type: ignore[index]
    return sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))


def _meta_judge(
    example: Example, judgments: Sequence[Judgment], ratings: Sequence[int | None]
) -> Outcome:
    if len(ratings) != len(judgments):
        raise ValueError(f"{len(ratings)} ratings for {len(judgments)} judgments")
    ok_rated = [(j, r) for j, r in zip(judgments, ratings, strict=True) if j.ok]
    rated = [(j, r) for j, r in ok_rated if r is not None]
    failures = len(ok_rated) - len(rated)  # a missing rating is excluded, never defaulted
    if not ok_rated:
        return Outcome([], "no_usable")
    if len(rated) < 2:
        return Outcome([], "no_ratings" if not rated else "single", failures)
    make, pairs = _pair_maker(example, "meta_judge"), []
    for (chosen, rc), (rejected, rr) in permutations(rated, 2):
        if rc <= rr or _text(chosen) == _text(rejected):  # type: ignore[operator]
            continue
        reason = (
            f"meta-judge rated chosen {rc} > rejected {rr} "
            f"(verdicts {chosen.verdict} vs {rejected.verdict})"
        )
        pairs.append(
            make(chosen, rejected, "rated_higher", reason, chosen_rating=rc, rejected_rating=rr)
        )
    return Outcome(pairs, None if pairs else "ratings_equal", failures)


def _rationale_meta(
    example: Example, judgments: Sequence[Judgment], best_worst: BestWorst | None
) -> Outcome:
    ok = usable(judgments)
    if len(ok) < 2:
        return Outcome([], "no_usable" if not ok else "single")
    if best_worst is None:
        return Outcome([], "no_meta", meta_failures=1)
    best, worst = best_worst.best, best_worst.worst
    if not (1 <= best <= len(ok) and 1 <= worst <= len(ok)):
        # The items shown were usable(judgments); out of range means a mismatched list.
        raise ValueError(f"best/worst {best}/{worst} outside 1..{len(ok)} usable judgments")
    chosen, rejected = ok[best - 1], ok[worst - 1]
    if best == worst or _text(chosen) == _text(rejected):
        return Outcome([], "best_is_worst")
    reason = (
        f"meta-judge picked ITEM{best} (verdict {chosen.verdict}) as best and ITEM{worst} "
        f"(verdict {rejected.verdict}) as worst of {len(ok)} rationales"
    )
    make = _pair_maker(example, "rationale_meta")
    pair = make(chosen, rejected, "best_vs_worst", reason, best_item=best, worst_item=worst)
    return Outcome([pair])


def _preference_reversal(
    example: Example, judgments: Sequence[Judgment], low_quality: Sequence[str]
) -> Outcome:
    ok = usable(judgments)
    if problem := _gold_problem(example, ok):
        return Outcome([], problem)
    if not low_quality:
        return Outcome([], "no_low_quality")
    gold = gold_verdict(example)
    correct = [j for j in ok if j.verdict == gold]
    make, pairs = _pair_maker(example, "preference_reversal"), []
    for k, rationale in enumerate(low_quality):
        if "[RESULT]" in rationale.upper():
            raise ValueError(f"low_quality[{k}] carries a verdict; pass the rationale only")
        text = f"{rationale.strip()} [RESULT] {gold}"
        chosen = Judgment(example.id, example.kind, text, rationale.strip(), gold, sample_index=k)  # type: ignore[arg-type]
        for rejected in correct:
            if _text(chosen) == _text(rejected):
                continue
            reason = (
                f"ablation (preference reversal): chosen = low-quality rationale {k} + "
                f"[RESULT] {gold}; rejected = own judgment, verdict {rejected.verdict} == gold; "
                "margin 0"
            )
            meta = {"chosen_index": None, "low_quality_index": k, "min_margin": 0, "gold": gold}
            pairs.append(make(chosen, rejected, "reversal", reason, **meta))
    return Outcome(pairs, None if pairs else "below_margin")


def correct_answer_pairs(
    example: Example, judgments: Sequence[Judgment], *, margin: int = 2
) -> list[PreferencePair]:
    """All (correct, other) pairs with |verdict gap| >= margin (pairwise: capped at 1)."""
    return _correct_answer(example, judgments, margin).pairs


def majority_vote_pairs(
    example: Example, judgments: Sequence[Judgment], *, margin: int = 1
) -> list[PreferencePair]:
    """All (majority verdict, other verdict) pairs; no gold used; a majority tie gives none."""
    return _majority_vote(example, judgments, margin).pairs


def meta_judge_pairs(
    example: Example, judgments: Sequence[Judgment], ratings: Sequence[int | None]
) -> list[PreferencePair]:
    """All pairs the meta-judge rated chosen > rejected; ``ratings`` aligned with judgments."""
    return _meta_judge(example, judgments, ratings).pairs


def rationale_meta_pairs(
    example: Example, judgments: Sequence[Judgment], best_worst: BestWorst | None
) -> list[PreferencePair]:
    """One (best, worst) pair; items are 1-based positions in ``usable(judgments)``."""
    return _rationale_meta(example, judgments, best_worst).pairs


def preference_reversal_pairs(
    example: Example, judgments: Sequence[Judgment], low_quality: Sequence[str]
) -> list[PreferencePair]:
    """Ablation: (low-quality rationale + gold verdict, own correct judgment) pairs."""
    return _preference_reversal(example, judgments, low_quality).pairs


# ---------------------------------------------------------------------------------------
# configuration, dispatch, filters and counts


class Strategy(NamedTuple):
    run: Callable[[Example, Sequence[Judgment], CurationConfig, Mapping[str, Any]], Outcome]
    needs: tuple[str, ...] = ()
    """Keyword inputs ``curate`` must be given (results of ``srjudge.training.metajudge``)."""


STRATEGIES: dict[str, Strategy] = {
    "correct_answer": Strategy(lambda ex, js, cfg, x: _correct_answer(ex, js, cfg.margin)),
    "majority_vote": Strategy(lambda ex, js, cfg, x: _majority_vote(ex, js, cfg.margin)),
    "meta_judge": Strategy(lambda ex, js, cfg, x: _meta_judge(ex, js, x["ratings"]), ("ratings",)),
    "rationale_meta": Strategy(
        lambda ex, js, cfg, x: _rationale_meta(ex, js, x["best_worst"]), ("best_worst",)
    ),
    "preference_reversal": Strategy(
        lambda ex, js, cfg, x: _preference_reversal(ex, js, x["low_quality"]), ("low_quality",)
    ),
}


@dataclass(frozen=True)
class CurationConfig:
    strategy: str = "correct_answer"
    """One of ``STRATEGIES``; the paper's main setting is ``correct_answer`` with margin 2."""
    margin: int = 2
    """Minimum |chosen - rejected verdict| for ``correct_answer`` and ``majority_vote``, 0..4.
    Pairwise verdicts differ by at most 1, so there the margin is capped at 1."""
    max_pairs_per_input: int | None = None
    """Keep at most this many pairs per input (sampled with ``seed``); None keeps all."""
    dedupe: bool = True
    """Drop repeated (chosen, rejected) texts within an input."""
    seed: int = 0
    """Seeds the per-input sampling of the cap."""

    def __post_init__(self) -> None:  # every bad field at once (settings.SettingsError)
        raise_problems(self.field_problems())

    def field_problems(self) -> list[Problem]:  # margin above 4: no 1-5 verdicts differ so
        problems = range_problems(self, {"margin": (0, 4), "max_pairs_per_input": (1, None)})
        if self.strategy not in STRATEGIES:
            known = ", ".join(STRATEGIES)
            problems.insert(0, ("strategy", f"{self.strategy!r}: unknown strategy; use {known}"))
        return problems


@dataclass
class CurationStats:
    """Counts for one input or (summed) a whole curation run; plain dicts so it serialises."""

    inputs: int = 0
    inputs_with_pairs: int = 0
    judgments: int = 0
    parse_failures: int = 0
    """Unparseable judgments, excluded from every pair."""
    no_correct: int = 0
    """Inputs with a gold verdict (not a tie) that no usable judgment matched."""
    all_equal: int = 0
    """Inputs with >= 2 usable judgments, all with the same verdict."""
    ties_skipped: int = 0
    """Inputs skipped for a pairwise gold "tie" or a tie for the majority verdict."""
    meta_failures: int = 0
    pairs_built: int = 0
    pairs_after_dedupe: int = 0
    pairs_after_cap: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Why inputs gave no pairs (``no_correct``, ``all_equal``, ``gold_tie``, ``single``, ...)."""
    by_rule: dict[str, int] = field(default_factory=dict)
    """Kept pairs per rule (``correct_vs_wrong``, ``same_verdict``, ``rated_higher``, ...)."""
    by_margin: dict[int, int] = field(default_factory=dict)
    """Kept pairs per |chosen - rejected verdict|."""

    def add(self, other: CurationStats) -> None:
        for name, value in vars(other).items():
            if isinstance(value, dict):
                mine = getattr(self, name)
                for key, n in value.items():
                    mine[key] = mine.get(key, 0) + n
            else:
                setattr(self, name, getattr(self, name) + value)


@dataclass
class CurationResult:
    pairs: list[PreferencePair]
    counts: CurationStats


def _dedupe(pairs: list[PreferencePair]) -> list[PreferencePair]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in pairs:
        if (p.chosen, p.rejected) not in seen:
            seen.add((p.chosen, p.rejected))
            out.append(p)
    return out


def _cap(
    pairs: list[PreferencePair], cap: int | None, seed: int, example_id: str
) -> list[PreferencePair]:
    """At most ``cap`` pairs, so one input with many pairs cannot dominate the DPO data.

    Seeded per input (seed + id, a string seed hashes the same in every process), so the
    choice does not depend on the order inputs arrive in; kept pairs stay in their order.
    """
    if cap is None or len(pairs) <= cap:
        return pairs
    keep = random.Random(f"{seed}:{example_id}").sample(range(len(pairs)), cap)
    return [pairs[i] for i in sorted(keep)]


def curate(
    example: Example, judgments: Sequence[Judgment], cfg: CurationConfig, **extra: Any
) -> CurationResult:
    """Pairs for one input by ``cfg.strategy``, then dedupe and cap; with the counts."""
    strategy = STRATEGIES[cfg.strategy]
    if missing := [k for k in strategy.needs if k not in extra]:
        raise TypeError(f"strategy {cfg.strategy!r} needs {', '.join(missing)}")
    outcome = strategy.run(example, judgments, cfg, extra)
    pairs = outcome.pairs
    ok = usable(judgments)
    gold = gold_verdict(example)
    stats = CurationStats(
        inputs=1,
        judgments=len(judgments),
        parse_failures=len(judgments) - len(ok),
        no_correct=int(gold not in (None, "tie") and bool(ok) and gold not in _verdicts(ok)),
        all_equal=int(len(ok) >= 2 and len(_verdicts(ok)) == 1),
        ties_skipped=int(outcome.skipped in ("gold_tie", "majority_tie")),
        meta_failures=outcome.meta_failures,
        pairs_built=len(pairs),
    )
    if cfg.dedupe:
        pairs = _dedupe(pairs)
    stats.pairs_after_dedupe = len(pairs)
    pairs = _cap(pairs, cfg.max_pairs_per_input, cfg.seed, example.id)
    stats.pairs_after_cap = len(pairs)
    stats.inputs_with_pairs = int(bool(pairs))
    if outcome.skipped:
        stats.skipped[outcome.skipped] = 1
    for p in pairs:
        stats.by_rule[p.meta["rule"]] = stats.by_rule.get(p.meta["rule"], 0) + 1
        stats.by_margin[p.meta["margin"]] = stats.by_margin.get(p.meta["margin"], 0) + 1
    return CurationResult(pairs, stats)


def _verdicts(ok: list[Judgment]) -> set[int | None]:
    return {j.verdict for j in ok}


def curate_all(
    items: Iterable[tuple[Example, Sequence[Judgment], Mapping[str, Any]]], cfg: CurationConfig
) -> tuple[list[PreferencePair], CurationStats]:
    """``curate`` over (example, judgments, extra inputs) triples; pairs in input order."""
    pairs: list[PreferencePair] = []
    stats = CurationStats()
    for example, judgments, extra in items:
        result = curate(example, judgments, cfg, **extra)
        pairs.extend(result.pairs)
        stats.add(result.counts)
    return pairs, stats
