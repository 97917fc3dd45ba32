"""Meta-judge stages against ``MockBackend``: prompts, batching, retries, and failures that
stay ``None`` (never a default rating) and are counted by curation."""

from __future__ import annotations

import pytest

from srjudge.judging.backends import MockBackend, SamplingParams
from srjudge.judging.parsing import BestWorst
from srjudge.judging.prompts import meta_rating_prompt, reversal_prompt
from srjudge.records import Judgment, Message, PairwiseExample, PointwiseExample, Rubric
from srjudge.training.curate import CurationConfig, curate
from srjudge.training.metajudge import pick_best_worst, rate_judgments, write_low_quality

RUBRIC = Rubric("Is it helpful?", ("useless", "poor", "okay", "good", "excellent"))
EXAMPLE = PointwiseExample("p1", [Message("user", "What is 2+2?")], "4.", RUBRIC, gold_score=4)
PAIRWISE = PairwiseExample("q1", [Message("user", "Hi")], "Hello!", "Go away.", RUBRIC, 1)
PARAMS = SamplingParams(n=3, temperature=0.0, seed=10)  # n is ignored where one answer is read


def judgments(*verdicts: int | None) -> list[Judgment]:
    out = []
    for i, v in enumerate(verdicts):
        if v is None:
            out.append(Judgment("p1", "pointwise", "garbled", None, None, "no [RESULT] marker", i))
        else:
            raw = f"Rationale {i}. [RESULT] {v}"
            out.append(Judgment("p1", "pointwise", raw, f"Rationale {i}.", v, None, i))
    return out


def user_text(prompt) -> str:
    return prompt[-1].content


# ---------------------------------------------------------------------------------------
# rate_judgments (A.1.4)


def test_rate_judgments_one_batched_call_aligned_with_judgments():
    def answer(prompt, i):
        score = user_text(prompt).split("[RESULT] ")[1][0]  # rate by the judgment's verdict
        return f"The reasoning is solid.\nJudgment Rating: {score}"

    backend = MockBackend(answer)
    ratings = rate_judgments(backend, EXAMPLE, judgments(4, None, 2), PARAMS)
    assert ratings == [4, None, 2]  # the unparseable judgment is not shown, and gets None
    assert len(backend.calls) == 1
    prompts, params = backend.calls[0]
    assert prompts == [
        meta_rating_prompt(EXAMPLE, "Rationale 0. [RESULT] 4"),
        meta_rating_prompt(EXAMPLE, "Rationale 2. [RESULT] 2"),
    ]
    assert (params.n, params.seed, params.temperature) == (1, 10, 0.0)


def test_rate_judgments_retries_only_the_failed_prompts_with_new_seeds():
    answers = iter(["Judgment Rating: 5", "I cannot decide.", "Judgment Rating: 2"])
    backend = MockBackend(lambda prompt, i: next(answers))
    assert rate_judgments(backend, EXAMPLE, judgments(4, 1), PARAMS) == [5, 2]
    assert [len(prompts) for prompts, _ in backend.calls] == [2, 1]
    assert [params.seed for _, params in backend.calls] == [10, 11]
    assert "[RESULT] 1" in user_text(backend.calls[1][0][0])  # the second judgment re-asked


@pytest.mark.parametrize(
    "bad",
    [
        "Judgment Rating: 7",
        "Judgment Rating: 4.5",
        "Judgment Rating: 3\nJudgment Rating: 4",
        "It is a fine judgment.",
        "",
    ],
)
def test_unparseable_ratings_stay_none_after_bounded_retries(bad):
    backend = MockBackend([bad])
    ratings = rate_judgments(backend, EXAMPLE, judgments(4, 2), PARAMS, max_retries=2)
    assert ratings == [None, None]  # not defaulted to any rating
    assert len(backend.calls) == 3  # first try + 2 retries, then it stops
    result = curate(EXAMPLE, judgments(4, 2), CurationConfig("meta_judge"), ratings=ratings)
    assert result.pairs == []
    assert result.counts.meta_failures == 2
    assert result.counts.skipped == {"no_ratings": 1}


def test_no_retries_and_no_usable_judgments():
    backend = MockBackend(["nonsense"])
    assert rate_judgments(backend, EXAMPLE, judgments(4, 2), PARAMS, max_retries=0) == [None] * 2
    assert len(backend.calls) == 1
    backend = MockBackend(["Judgment Rating: 5"])
    assert rate_judgments(backend, EXAMPLE, judgments(None, None), PARAMS) == [None, None]
    assert backend.calls == []


def test_meta_judge_end_to_end():
    backend = MockBackend(["Judgment Rating: 5", "Judgment Rating: 2", "Judgment Rating: 4"])
    js = judgments(4, 1, 4)
    ratings = rate_judgments(backend, EXAMPLE, js, PARAMS)
    pairs = curate(EXAMPLE, js, CurationConfig("meta_judge"), ratings=ratings).pairs
    assert [(p.meta["chosen_index"], p.meta["rejected_index"]) for p in pairs] == [
        (0, 1),
        (0, 2),
        (2, 1),
    ]


# ---------------------------------------------------------------------------------------
# pick_best_worst (A.1.6)


def test_pick_best_worst_shows_usable_rationales_as_items():
    backend = MockBackend(['After comparing them: `["ITEM2", "ITEM1"]`'])
    js = judgments(4, None, 2)
    best_worst = pick_best_worst(backend, EXAMPLE, js, PARAMS)
    assert best_worst == BestWorst(best=2, worst=1)
    ((prompts, params),) = backend.calls
    text = user_text(prompts[0])
    assert "Rationale 0." in text and "Rationale 2." in text and "garbled" not in text
    assert params.n == 1
    (pair,) = curate(EXAMPLE, js, CurationConfig("rationale_meta"), best_worst=best_worst).pairs
    assert (pair.meta["chosen_index"], pair.meta["rejected_index"]) == (2, 0)


def test_pick_best_worst_retries_then_gives_none():
    backend = MockBackend(['["ITEM1", "ITEM1"]', '["ITEM9", "ITEM1"]', "ITEM1 is best"])
    assert pick_best_worst(backend, EXAMPLE, judgments(4, 2), PARAMS) is None
    assert len(backend.calls) == 3
    backend = MockBackend(["no list", '["ITEM1", "ITEM2"]'])
    assert pick_best_worst(backend, EXAMPLE, judgments(4, 2), PARAMS) == BestWorst(1, 2)


def test_pick_best_worst_needs_two_usable_judgments():
    backend = MockBackend(['["ITEM1", "ITEM2"]'])
    assert pick_best_worst(backend, EXAMPLE, judgments(4, None), PARAMS) is None
    assert backend.calls == []


# ---------------------------------------------------------------------------------------
# write_low_quality (A.1.5)


def test_write_low_quality_keeps_parsed_rationales_and_asks_for_the_missing():
    backend = MockBackend(["Me like it. [RESULT] 5", "it good", "Numbers are fun! [RESULT] 4"])
    low = write_low_quality(backend, EXAMPLE, 2, PARAMS)
    assert low == ["Me like it.", "Numbers are fun!"]  # verdicts dropped: curation adds gold
    assert [(p.n, p.seed) for _, p in backend.calls] == [(2, 10), (1, 11)]
    assert backend.calls[0][0] == [reversal_prompt(EXAMPLE)]
    pairs = curate(
        EXAMPLE, judgments(4, 1), CurationConfig("preference_reversal"), low_quality=low
    ).pairs
    assert [p.chosen for p in pairs] == ["Me like it. [RESULT] 4", "Numbers are fun! [RESULT] 4"]


def test_write_low_quality_bounded_and_never_padded():
    backend = MockBackend(["I dunno"])
    assert write_low_quality(backend, EXAMPLE, 2, PARAMS, max_retries=1) == []
    assert len(backend.calls) == 2


def test_write_low_quality_pairwise_is_empty_without_a_call():
    backend = MockBackend(["Me like it. [RESULT] 5"])
    assert write_low_quality(backend, PAIRWISE, 2, PARAMS) == []
    assert backend.calls == []
