"""The parsers pinned by tables of real-looking model outputs, including the must-fail ones.

Each row is (generated text, [mode,] expected): ``Parsed(...)`` / ``BestWorst(...)`` for a
success, or a substring of the ``ParseFailure.reason``. Rows are written the way small LMs
(SmolLM2, Prometheus-style fine-tunes) and GPT-4 write them; the tables are kept out of the
formatter (``fmt: off``) so that each row stays one readable entry.
"""

from __future__ import annotations

import doctest

import pytest

from srjudge.judging import parsing
from srjudge.judging.parsing import BestWorst, Parsed, ParseFailure

P, Q = "pointwise", "pairwise"

MULTILINE = (
    "The response answers the question directly.\n\n"
    "- It names the capital correctly.\n"
    "- It adds an unnecessary tangent about population.\n\n"
    "Overall it mostly meets the criteria."
)

# fmt: off
JUDGMENTS: list[tuple[str, str, Parsed | str]] = [
    # --- Prometheus / paper format --------------------------------------------------
    ("Feedback: The response is polite and complete. [RESULT] 4", P,
     Parsed("The response is polite and complete.", 4)),
    ("The response is rude and dismissive. [RESULT] 1", P,
     Parsed("The response is rude and dismissive.", 1)),
    ("Feedback: Clear, accurate and safe.\n[RESULT] 5", P, Parsed("Clear, accurate and safe.", 5)),
    (MULTILINE + "\n[RESULT] 3", P, Parsed(MULTILINE, 3)),
    ("**Feedback:** Mostly accurate, misses one step. [RESULT] 3", P,
     Parsed("Mostly accurate, misses one step.", 3)),
    ("Rationale: Too vague to be useful. [RESULT] 2", P, Parsed("Too vague to be useful.", 2)),
    ("  \n Feedback: Good.  [RESULT] 4  \n", P, Parsed("Good.", 4)),
    # --- verdict spellings ----------------------------------------------------------
    ("Some helpful detail but incomplete. [RESULT] (3)", P,
     Parsed("Some helpful detail but incomplete.", 3)),
    ("Response 2 follows the criteria better. [RESULT] (2)", Q,
     Parsed("Response 2 follows the criteria better.", 2)),
    ("It is fine. [RESULT]: 3", P, Parsed("It is fine.", 3)),
    ("It is fine. [RESULT] 3.", P, Parsed("It is fine.", 3)),
    ("Solid answer. [RESULT] 4/5", P, Parsed("Solid answer.", 4)),
    ("Solid answer. [RESULT] (4/5)", P, Parsed("Solid answer.", 4)),
    ("Solid answer. [RESULT] 4 out of 5", P, Parsed("Solid answer.", 4)),
    ("Solid answer. [RESULT] [4]", P, Parsed("Solid answer.", 4)),
    ("Solid answer. [RESULT] Score: 4", P, Parsed("Solid answer.", 4)),
    ("RESPONSE 1 is safer. [RESULT] RESPONSE 1", Q, Parsed("RESPONSE 1 is safer.", 1)),
    ("Excellent, thorough answer. [result] 5", P, Parsed("Excellent, thorough answer.", 5)),
    ("Excellent, thorough answer. [ RESULT ] 5", P, Parsed("Excellent, thorough answer.", 5)),
    # --- markdown bold --------------------------------------------------------------
    ("The reply is kind but short.\n\n**[RESULT] 4**", P,
     Parsed("The reply is kind but short.", 4)),
    ("The reply is kind but short.\n\n**[RESULT]:** 4", P,
     Parsed("The reply is kind but short.", 4)),
    ("The reply is kind but short. [RESULT] **4**", P, Parsed("The reply is kind but short.", 4)),
    ("Response 1 refuses the harmful request.\n**[RESULT]** 1", Q,
     Parsed("Response 1 refuses the harmful request.", 1)),
    # --- end-of-turn tokens (SmolLM2 / Llama 3 / Mistral) ---------------------------
    ("Feedback: Accurate. [RESULT] 5<|im_end|>", P, Parsed("Accurate.", 5)),
    ("Accurate. [RESULT] 5 <|im_end|>\n<|im_start|>user\nThanks [RESULT] 1", P,
     Parsed("Accurate.", 5)),
    ("Response 2 is more complete. [RESULT] 2<|eot_id|>", Q,
     Parsed("Response 2 is more complete.", 2)),
    ("Response 2 is more complete. [RESULT] 2</s>", Q, Parsed("Response 2 is more complete.", 2)),
    # --- score-only outputs: rationale required by default --------------------------
    ("[RESULT] 4", P, "empty rationale"),
    ("Feedback: [RESULT] 4", P, "empty rationale"),
    # --- must fail --------------------------------------------------------------------
    ("", P, "empty output"),
    ("   \n\t", P, "empty output"),
    ("<|im_end|>", P, "empty output"),
    ("The response is helpful and correct. Score: 4", P, "no [RESULT] marker"),
    ("Result: 4", P, "no [RESULT] marker"),
    ("The answer is good.\nScore: 2.5", P, "no [RESULT] marker"),
    ("Good answer [RESULT] 2.5", P, "non-integer verdict '2.5'"),
    ("Good answer [RESULT] 3.0", P, "non-integer verdict '3.0'"),
    ("Terrible. [RESULT] 6", P, "verdict 6 outside 1-5"),
    ("Terrible. [RESULT] 0", P, "verdict 0 outside 1-5"),
    ("Terrible. [RESULT] -1", P, "verdict -1 outside 1-5"),
    ("Both are fine. [RESULT] 3", Q, "verdict 3 outside 1-2"),
    ("Response 1 wins. [RESULT] 4/5", Q, "not on the 1-2 scale"),
    ("Decent. [RESULT] 7/10", P, "not on the 1-5 scale"),
    ("Response 1 is better. [RESULT] 1 [RESULT] 2", Q, "two verdicts"),
    ("It quotes the reply: '[RESULT] 5'. That is an attempt to game the judge. [RESULT] 1", P,
     "two verdicts"),
    ("Fine. [RESULT] 4\nActually, on reflection: [RESULT] 4", P, "two verdicts"),
    ("Okay. [RESULT] 4\n\nThe response could be improved by adding examples.", P,
     "text after verdict"),
    ("Okay. [RESULT] 4 (Good)", P, "text after verdict"),
    ("Okay. [RESULT] (1-5)", P, "text after verdict"),
    ("Both responses are equal. [RESULT] tie", Q, "no verdict after [RESULT]"),
    ("I cannot decide. [RESULT]", P, "no verdict after [RESULT]"),
    ("Good. [RESULT] four", P, "no verdict after [RESULT]"),
    ("Accurate.<|im_end|> [RESULT] 5", P, "no [RESULT] marker"),
]
# fmt: on


def _check(got: Parsed | ParseFailure | BestWorst, expected: Parsed | BestWorst | str) -> None:
    if isinstance(expected, str):
        assert isinstance(got, ParseFailure), got
        assert expected in got.reason
    else:
        assert got == expected


def test_table_is_large_enough():
    assert len(JUDGMENTS) >= 40


@pytest.mark.parametrize(("text", "mode", "expected"), JUDGMENTS)
def test_parse_judgment(text, mode, expected):
    _check(parsing.parse_judgment(text, mode), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[RESULT] 4", Parsed("", 4)),
        ("[RESULT] (2)<|im_end|>", Parsed("", 2)),
        ("  **[RESULT]: 5**", Parsed("", 5)),
        ("Score: 4", "no [RESULT] marker"),
    ],
)
def test_score_only_allows_empty_rationale(text, expected):
    _check(parsing.parse_judgment(text, "pointwise", require_rationale=False), expected)


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="mode"):
        parsing.parse_judgment("x [RESULT] 1", "listwise")  # type: ignore[arg-type]


# fmt: off
RATINGS: list[tuple[str, Parsed | str]] = [
    ("The judgment's score matches the criteria and it explains why.\nJudgment Rating: 4",
     Parsed("The judgment's score matches the criteria and it explains why.", 4)),
    ("Reasoning is thin.\n\n**Judgment Rating:** 2", Parsed("Reasoning is thin.", 2)),
    ("Reasoning is thin.\n**Judgment Rating: 2**", Parsed("Reasoning is thin.", 2)),
    ("Excellent.\njudgment rating: 5<|im_end|>", Parsed("Excellent.", 5)),
    ("Excellent.\n### Judgement Rating: 5", Parsed("Excellent.", 5)),
    ("Good overall.\nJudgment Rating: 4 (Good Judgment)", Parsed("Good overall.", 4)),
    ("Good overall.\nJudgment Rating: <4>", Parsed("Good overall.", 4)),
    ("Judgment Rating: 3", Parsed("", 3)),
    ("", "empty output"),
    ("The judgment is good. Rating: 4", "no 'Judgment Rating:' line"),
    ("Judgment Rating: 6", "rating 6 outside 1-5"),
    ("Judgment Rating: 3.5", "non-integer rating '3.5'"),
    ("Judgment Rating: <judgment rating>", "no rating after"),
    ("Judgment Rating: 4\nOn second thought, Judgment Rating: 3", "two ratings"),
    ("Judgment Rating: 4\n\nThe judgment could mention more weaknesses.", "text after rating"),
]
# fmt: on


@pytest.mark.parametrize(("text", "expected"), RATINGS)
def test_parse_meta_rating(text, expected):
    _check(parsing.parse_meta_rating(text), expected)


# fmt: off
BEST_WORST: list[tuple[str, int, BestWorst | str]] = [
    ('["ITEM3", "ITEM1"]', 3, BestWorst(3, 1)),
    ('`["ITEM2", "ITEM4"]`', 4, BestWorst(2, 4)),
    ("['ITEM1', 'ITEM2']", 2, BestWorst(1, 2)),
    ("[ITEM2, ITEM1]", 2, BestWorst(2, 1)),
    ('ITEM2 is the most coherent; ITEM3 is off-topic.\n\n```\n["ITEM2", "ITEM3"]\n```', 3,
     BestWorst(2, 3)),
    ('Answer: ["item1", "item3"]<|im_end|>', 3, BestWorst(1, 3)),
    ('["ITEM2", "ITEM1"]\nFinal answer: ["ITEM2", "ITEM1"]', 3, BestWorst(2, 1)),
    ("", 3, "empty output"),
    ("ITEM3 is best and ITEM1 is worst.", 3, "no"),
    ('["ITEM3"]', 3, "no"),
    ('["ITEM5", "ITEM1"]', 4, "ITEM5 outside 1-4"),
    ('["ITEM0", "ITEM1"]', 4, "ITEM0 outside 1-4"),
    ('["ITEM2", "ITEM2"]', 3, "same item"),
    ('["ITEM1", "ITEM2"] or maybe ["ITEM2", "ITEM1"]', 3, "two different answers"),
]
# fmt: on


@pytest.mark.parametrize(("text", "n_items", "expected"), BEST_WORST)
def test_parse_best_worst(text, n_items, expected):
    _check(parsing.parse_best_worst(text, n_items), expected)


def test_best_worst_needs_two_items():
    with pytest.raises(ValueError):
        parsing.parse_best_worst('["ITEM1", "ITEM1"]', 1)


def test_doctests():
    result = doctest.testmod(parsing)
    assert result.attempted > 0 and result.failed == 0
