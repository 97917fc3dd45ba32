"""Curation strategies pinned by tables of hand-built judgments, plus the issue's edge cases.

A table row gives the verdicts of the sampled judgments (``None`` = unparseable) and the
expected pairs as (chosen sample index, rejected sample index), or the skip reason when none.
"""

from __future__ import annotations

import doctest
import json

import dacite
import pytest

from srjudge.judging.parsing import BestWorst
from srjudge.judging.prompts import judge_prompt
from srjudge.records import (
    Judgment,
    Message,
    PairwiseExample,
    PointwiseExample,
    Rubric,
    pair_from_dict,
    to_dict,
)
from srjudge.training import curate as curate_module
from srjudge.training.curate import (
    STRATEGIES,
    CurationConfig,
    correct_answer_pairs,
    curate,
    curate_all,
    effective_margin,
    gold_verdict,
    majority_vote_pairs,
    meta_judge_pairs,
    preference_reversal_pairs,
    rationale_meta_pairs,
)

RUBRIC = Rubric("Is it helpful?", ("useless", "poor", "okay", "good", "excellent"))


def point(gold: float | None = 4, id: str = "p1") -> PointwiseExample:
    return PointwiseExample(id, [Message("user", "What is 2+2?")], "4.", RUBRIC, gold_score=gold)


def pair_ex(gold: int | str | None = 1, id: str = "q1") -> PairwiseExample:
    return PairwiseExample(id, [Message("user", "Hi")], "Hello!", "Go away.", RUBRIC, gold)


def judgments(*verdicts: int | None, mode: str = "pointwise", id: str = "p1") -> list[Judgment]:
    """One judgment per verdict; None is an unparseable one. Raw texts carry stray whitespace."""
    out = []
    for i, v in enumerate(verdicts):
        if v is None:
            out.append(
                Judgment(id, mode, "I think it is fine", None, None, "no [RESULT] marker", i)
            )
        else:
            raw = f" Rationale {i}. [RESULT] {v}\n"
            out.append(Judgment(id, mode, raw, f"Rationale {i}.", v, None, i))
    return out


def indices(pairs) -> list[tuple[int, int]]:
    return [(p.meta["chosen_index"], p.meta["rejected_index"]) for p in pairs]


def skipped(example, js, cfg: CurationConfig, **extra) -> dict[str, int]:
    return curate(example, js, cfg, **extra).counts.skipped


# ---------------------------------------------------------------------------------------
# gold and margins


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        (point(4), 4),
        (point(3.67), 4),
        (point(3.5), 4),  # half-up, not banker's rounding
        (point(2.5), 3),
        (point(2.49), 2),
        (point(None), None),
        (pair_ex(2), 2),
        (pair_ex("tie"), "tie"),
        (pair_ex(None), None),
    ],
)
def test_gold_verdict(example, expected):
    assert gold_verdict(example) == expected


def test_effective_margin_caps_pairwise_at_one():
    assert [effective_margin(point(), m) for m in (0, 1, 2, 3)] == [0, 1, 2, 3]
    assert [effective_margin(pair_ex(), m) for m in (0, 1, 2, 3)] == [0, 1, 1, 1]
    with pytest.raises(ValueError, match="margin"):
        effective_margin(point(), -1)


# ---------------------------------------------------------------------------------------
# correct_answer

# fmt: off
CORRECT_ANSWER = [
    # gold, verdicts, margin, expected pairs or skip reason
    (4, (4, 1, 3, 5, 2), 2, [(0, 1), (0, 4)]),
    (4, (4, 1, 3, 5, 2), 1, [(0, 1), (0, 2), (0, 3), (0, 4)]),
    (4, (4, 1, 3, 5, 2), 3, [(0, 1)]),
    (4, (4, 4, 1), 2, [(0, 2), (1, 2)]),
    (4, (4, 4, 1), 0, [(0, 1), (0, 2), (1, 2)]),     # same verdict once, earlier chosen
    (3.67, (4, 2, 3), 2, [(0, 1)]),                   # mean gold rounded to 4
    (2.5, (3, 1, 2), 2, [(0, 1)]),                    # 2.5 -> 3
    (4, (4, None, 1, None), 2, [(0, 2)]),             # unparseable never paired
    (4, (4, 4, 4), 0, [(0, 1), (0, 2), (1, 2)]),
    (4, (4, 4, 4), 1, "all_equal"),
    (4, (4, 3, 5), 2, "below_margin"),
    (5, (1, 2, 3), 2, "no_correct"),
    (4, (4,), 0, "single"),                           # N = 1
    (4, (None, None), 2, "no_usable"),
    (None, (4, 1), 2, "no_gold"),
    (4, (), 2, "no_usable"),
]
# fmt: on


@pytest.mark.parametrize(("gold", "verdicts", "margin", "expected"), CORRECT_ANSWER)
def test_correct_answer_pointwise(gold, verdicts, margin, expected):
    js = judgments(*verdicts)
    pairs = correct_answer_pairs(point(gold), js, margin=margin)
    if isinstance(expected, str):
        assert pairs == []
        assert skipped(point(gold), js, CurationConfig(margin=margin)) == {expected: 1}
    else:
        assert indices(pairs) == expected
        for p in pairs:
            assert p.chosen_verdict == gold_verdict(point(gold))
            assert abs(p.chosen_verdict - p.rejected_verdict) >= margin


# fmt: off
CORRECT_ANSWER_PAIRWISE = [
    (1, (1, 2, 2, 1), 2, [(0, 1), (0, 2), (3, 1), (3, 2)]),   # margin 2 capped at 1
    (1, (1, 2, 2, 1), 1, [(0, 1), (0, 2), (3, 1), (3, 2)]),
    (1, (1, 2, 2, 1), 0, [(0, 1), (0, 2), (0, 3), (3, 1), (3, 2)]),
    (2, (1, 2, None), 2, [(1, 0)]),
    (2, (1, 1), 1, "no_correct"),
    (1, (1, 1), 1, "all_equal"),
    ("tie", (1, 2), 1, "gold_tie"),
]
# fmt: on


@pytest.mark.parametrize(("gold", "verdicts", "margin", "expected"), CORRECT_ANSWER_PAIRWISE)
def test_correct_answer_pairwise(gold, verdicts, margin, expected):
    js = judgments(*verdicts, mode="pairwise", id="q1")
    pairs = correct_answer_pairs(pair_ex(gold), js, margin=margin)
    if isinstance(expected, str):
        assert pairs == []
        assert skipped(pair_ex(gold), js, CurationConfig(margin=margin)) == {expected: 1}
    else:
        assert indices(pairs) == expected


def test_correct_answer_pair_fields_and_reason():
    example = point(4)
    (pair,) = correct_answer_pairs(example, judgments(4, 1), margin=2)
    assert pair.example_id == "p1"
    assert pair.prompt == judge_prompt(example)  # exactly what the judge saw
    assert pair.chosen == "Rationale 0. [RESULT] 4"  # Judgment.raw, stripped
    assert pair.rejected == "Rationale 1. [RESULT] 1"
    assert (pair.chosen_verdict, pair.rejected_verdict) == (4, 1)
    assert pair.strategy == "correct_answer"
    assert pair.reason == "chosen verdict 4 == gold 4; rejected 1; margin 3 >= 2"
    assert pair.meta == {
        "rule": "correct_vs_wrong",
        "chosen_index": 0,
        "rejected_index": 1,
        "margin": 3,
        "min_margin": 2,
        "gold": 4,
    }


def test_correct_answer_reasons_say_when_the_margin_was_capped_or_zero():
    (capped,) = correct_answer_pairs(pair_ex(1), judgments(1, 2, mode="pairwise"), margin=2)
    assert capped.reason.endswith("margin 1 >= 1 (pairwise: margin 2 capped at 1)")
    (same,) = correct_answer_pairs(point(4), judgments(4, 4), margin=0)
    assert same.meta["rule"] == "same_verdict"
    assert "no quality signal" in same.reason


def test_margin_zero_needs_different_texts():
    js = judgments(4, 4)
    js[1].raw = js[0].raw + "  "  # same text once stripped
    assert correct_answer_pairs(point(4), js, margin=0) == []


def test_uses_sample_index_not_position():
    js = judgments(1, 4)
    js[0].sample_index, js[1].sample_index = 7, 3
    assert indices(correct_answer_pairs(point(4), js, margin=2)) == [(3, 7)]


# ---------------------------------------------------------------------------------------
# majority_vote

# fmt: off
MAJORITY = [
    # verdicts, margin, expected pairs or skip reason; the gold (1) is never used
    ((3, 3, 3, 1, 5), 1, [(0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4)]),
    ((3, 3, 3, 1, 5), 2, [(0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4)]),
    ((3, 3, 3, 1, 4), 2, [(0, 3), (1, 3), (2, 3)]),
    ((3, 3, 3, 1, 4), 0, [(0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4)]),  # 0 acts as 1
    ((3, 3, 3, 2, 4), 2, "below_margin"),
    ((2, 3, 3, 4), 1, [(1, 0), (1, 3), (2, 0), (2, 3)]),  # plurality, not > 50 %
    ((3, 3, 1, 1), 1, "majority_tie"),
    ((1, 2, 3), 1, "majority_tie"),
    ((3, 3, 3), 1, "all_equal"),
    ((3,), 1, "single"),
    ((3, None, None, None, 1, 3), 1, [(0, 4), (5, 4)]),  # unparseable ones are no votes
    ((None,), 1, "no_usable"),
]
# fmt: on


@pytest.mark.parametrize(("verdicts", "margin", "expected"), MAJORITY)
def test_majority_vote(verdicts, margin, expected):
    js = judgments(*verdicts)
    pairs = majority_vote_pairs(point(1), js, margin=margin)
    cfg = CurationConfig("majority_vote", margin=margin)
    if isinstance(expected, str):
        assert pairs == []
        assert skipped(point(1), js, cfg) == {expected: 1}
    else:
        assert indices(pairs) == expected


def test_majority_vote_pairwise_and_reason():
    js = judgments(1, 1, 2, mode="pairwise", id="q1")
    pairs = majority_vote_pairs(pair_ex(2), js, margin=2)  # capped at 1
    assert indices(pairs) == [(0, 2), (1, 2)]
    reason = "chosen verdict 1 is the majority (2/3); rejected 2 (1/3); margin 1 >= 1"
    assert pairs[0].reason == reason
    assert pairs[0].meta["majority"] == 1


def test_majority_ties_counted_as_ties():
    counts = curate(point(1), judgments(3, 3, 1, 1), CurationConfig("majority_vote")).counts
    assert counts.ties_skipped == 1


# ---------------------------------------------------------------------------------------
# meta_judge

# fmt: off
META = [
    # verdicts, ratings, expected pairs or skip reason
    ((4, 2, 1, 4), (5, 3, None, 3), [(0, 1), (0, 3)]),
    ((4, 2, 1), (1, 3, 5), [(1, 0), (2, 0), (2, 1)]),   # the rating decides, not the verdict
    ((4, None, 2), (2, 5, 1), [(0, 2)]),                 # unparseable judgment: rating ignored
    ((4, 2), (3, 3), "ratings_equal"),
    ((4, 2), (None, None), "no_ratings"),
    ((4, 2), (4, None), "single"),
    ((None, None), (None, None), "no_usable"),
]
# fmt: on


@pytest.mark.parametrize(("verdicts", "ratings", "expected"), META)
def test_meta_judge(verdicts, ratings, expected):
    js = judgments(*verdicts)
    pairs = meta_judge_pairs(point(4), js, list(ratings))
    if isinstance(expected, str):
        assert pairs == []
        assert skipped(point(4), js, CurationConfig("meta_judge"), ratings=list(ratings)) == {
            expected: 1
        }
    else:
        assert indices(pairs) == expected


def test_meta_judge_failures_are_counted_not_defaulted():
    js = judgments(4, 2, 1, 4)
    result = curate(point(4), js, CurationConfig("meta_judge"), ratings=[5, None, None, 3])
    assert indices(result.pairs) == [(0, 3)]
    assert result.counts.meta_failures == 2
    assert result.pairs[0].reason == "meta-judge rated chosen 5 > rejected 3 (verdicts 4 vs 4)"
    assert result.pairs[0].meta["chosen_rating"] == 5


def test_meta_judge_ratings_must_align():
    with pytest.raises(ValueError, match="3 ratings for 2 judgments"):
        meta_judge_pairs(point(4), judgments(4, 1), [1, 2, 3])


# ---------------------------------------------------------------------------------------
# rationale_meta


def test_rationale_meta_items_are_usable_judgments():
    js = judgments(4, None, 2, 3)  # shown to the meta-judge as ITEM1=#0, ITEM2=#2, ITEM3=#3
    (pair,) = rationale_meta_pairs(point(4), js, BestWorst(best=3, worst=1))
    assert (pair.meta["chosen_index"], pair.meta["rejected_index"]) == (3, 0)
    assert pair.reason == (
        "meta-judge picked ITEM3 (verdict 3) as best and ITEM1 (verdict 4) as worst of 3 rationales"
    )


@pytest.mark.parametrize(
    ("verdicts", "best_worst", "expected"),
    [
        ((4, 2), None, "no_meta"),
        ((4, None), BestWorst(1, 2), "single"),
        ((None, None), BestWorst(1, 2), "no_usable"),
        ((4, 2), BestWorst(2, 2), "best_is_worst"),
    ],
)
def test_rationale_meta_no_pair(verdicts, best_worst, expected):
    js = judgments(*verdicts)
    assert rationale_meta_pairs(point(4), js, best_worst) == []
    counts = curate(point(4), js, CurationConfig("rationale_meta"), best_worst=best_worst).counts
    assert counts.skipped == {expected: 1}
    assert counts.meta_failures == int(expected == "no_meta")


def test_rationale_meta_rejects_items_outside_the_list():
    with pytest.raises(ValueError, match="outside 1..2"):
        rationale_meta_pairs(point(4), judgments(4, 2, None), BestWorst(3, 1))


# ---------------------------------------------------------------------------------------
# preference_reversal


def test_preference_reversal_keeps_gold_on_both_sides():
    js = judgments(4, 1, 4)
    pairs = preference_reversal_pairs(point(4), js, ["Me like it, it has a number."])
    assert [p.rejected for p in pairs] == ["Rationale 0. [RESULT] 4", "Rationale 2. [RESULT] 4"]
    assert {p.chosen for p in pairs} == {"Me like it, it has a number. [RESULT] 4"}
    assert all(p.chosen_verdict == p.rejected_verdict == 4 for p in pairs)
    assert pairs[0].meta == {
        "rule": "reversal",
        "chosen_index": None,
        "rejected_index": 0,
        "margin": 0,
        "low_quality_index": 0,
        "min_margin": 0,
        "gold": 4,
    }
    assert pairs[0].reason.startswith("ablation (preference reversal): chosen = low-quality")


def test_preference_reversal_every_low_quality_rationale_times_every_correct_judgment():
    pairs = preference_reversal_pairs(point(3.67), judgments(4, 4, 2), ["a", "b"])
    assert [(p.meta["low_quality_index"], p.meta["rejected_index"]) for p in pairs] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]


@pytest.mark.parametrize(
    ("example", "verdicts", "low", "expected"),
    [
        (point(4), (4, 1), [], "no_low_quality"),
        (point(5), (4, 1), ["a"], "no_correct"),
        (point(None), (4, 1), ["a"], "no_gold"),
        (pair_ex("tie"), (1, 2), ["a"], "gold_tie"),
    ],
)
def test_preference_reversal_no_pair(example, verdicts, low, expected):
    js = judgments(*verdicts)
    cfg = CurationConfig("preference_reversal")
    assert preference_reversal_pairs(example, js, low) == []
    assert skipped(example, js, cfg, low_quality=low) == {expected: 1}


def test_preference_reversal_refuses_a_rationale_with_a_verdict():
    with pytest.raises(ValueError, match="rationale only"):
        preference_reversal_pairs(point(4), judgments(4), ["Nice. [RESULT] 2"])


# ---------------------------------------------------------------------------------------
# curate: dispatch, exclusion counts, dedupe, cap


def test_config_validation_and_strategy_table():
    assert set(STRATEGIES) == {
        "correct_answer",
        "majority_vote",
        "meta_judge",
        "rationale_meta",
        "preference_reversal",
    }
    with pytest.raises(ValueError, match="unknown strategy"):
        CurationConfig("best_guess")
    with pytest.raises(ValueError, match="margin"):
        CurationConfig(margin=-1)
    with pytest.raises(ValueError, match="max_pairs_per_input"):
        CurationConfig(max_pairs_per_input=0)


def test_config_loads_from_yaml_dict_like_run_configs():
    cfg = dacite.from_dict(
        CurationConfig,
        {"strategy": "majority_vote", "margin": 1, "max_pairs_per_input": 5},
        config=dacite.Config(strict=True),
    )
    assert cfg == CurationConfig("majority_vote", 1, 5)


def test_curate_needs_the_strategy_inputs():
    with pytest.raises(TypeError, match="needs ratings"):
        curate(point(4), judgments(4, 1), CurationConfig("meta_judge"))


def test_curate_counts_unparseable_judgments():
    result = curate(point(4), judgments(4, None, 1, None), CurationConfig())
    assert indices(result.pairs) == [(0, 2)]
    assert (result.counts.judgments, result.counts.parse_failures) == (4, 2)


def test_dedupe_identical_texts():
    js = judgments(4, 4, 1)
    js[1].raw = js[0].raw  # two samples wrote the same judgment
    kept = curate(point(4), js, CurationConfig())
    assert len(kept.pairs) == 1
    assert (kept.counts.pairs_built, kept.counts.pairs_after_dedupe) == (2, 1)
    assert len(curate(point(4), js, CurationConfig(dedupe=False)).pairs) == 2


def test_cap_per_input_is_seeded_and_order_independent():
    js = judgments(4, 4, 4, 1, 1, 1, 2, 2)  # 3 correct x 5 wrong at margin >= 2 = 15 pairs
    cfg = CurationConfig(max_pairs_per_input=4, seed=7)
    first = curate(point(4), js, cfg)
    assert (first.counts.pairs_built, first.counts.pairs_after_cap) == (15, 4)
    assert indices(curate(point(4), js, cfg).pairs) == indices(first.pairs)  # deterministic
    assert indices(first.pairs) == sorted(indices(first.pairs))  # kept in their order
    chosen_by_seed = {
        tuple(indices(curate(point(4), js, CurationConfig(max_pairs_per_input=4, seed=s)).pairs))
        for s in range(10)
    }
    assert len(chosen_by_seed) > 1  # the seed matters

    other = point(4, id="p2")
    forward, _ = curate_all([(point(4), js, {}), (other, js, {})], cfg)
    backward, _ = curate_all([(other, js, {}), (point(4), js, {})], cfg)
    by_id = lambda pairs: {(p.example_id, p.chosen, p.rejected) for p in pairs}  # noqa: E731
    assert by_id(forward) == by_id(backward)


def test_cap_above_pair_count_keeps_all():
    result = curate(point(4), judgments(4, 1, 2), CurationConfig(max_pairs_per_input=5))
    assert result.counts.pairs_after_cap == result.counts.pairs_built == 2


def test_curate_all_stats():
    items = [
        (point(4, "a"), judgments(4, 1, None, id="a"), {}),  # 1 pair, 1 parse failure
        (point(5, "b"), judgments(1, 2, id="b"), {}),  # no correct judgment
        (point(3, "c"), judgments(3, 3, 3, id="c"), {}),  # all equal
        (pair_ex("tie", "d"), judgments(1, 2, mode="pairwise", id="d"), {}),  # tie
        (pair_ex(2, "e"), judgments(1, 2, 2, mode="pairwise", id="e"), {}),  # 2 pairs
    ]
    pairs, stats = curate_all(items, CurationConfig())
    assert [p.example_id for p in pairs] == ["a", "e", "e"]
    assert to_dict(stats) == {
        "inputs": 5,
        "inputs_with_pairs": 2,
        "judgments": 13,
        "parse_failures": 1,
        "no_correct": 1,
        "all_equal": 1,
        "ties_skipped": 1,
        "meta_failures": 0,
        "pairs_built": 3,
        "pairs_after_dedupe": 3,
        "pairs_after_cap": 3,
        "skipped": {"no_correct": 1, "all_equal": 1, "gold_tie": 1},
        "by_rule": {"correct_vs_wrong": 3},
        "by_margin": {3: 1, 1: 2},
    }
    json.dumps(to_dict(stats))  # provenance is written as JSON


def test_pairs_round_trip_through_jsonl_dicts():
    (pair,) = correct_answer_pairs(point(4), judgments(4, 1))
    assert pair_from_dict(json.loads(json.dumps(to_dict(pair)))) == pair


def test_curate_is_pure():
    js = judgments(4, None, 1)
    before = [to_dict(j) for j in js]
    curate(point(4), js, CurationConfig())
    assert [to_dict(j) for j in js] == before


def test_doctests():
    assert doctest.testmod(curate_module).failed == 0
