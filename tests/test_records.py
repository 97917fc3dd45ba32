"""Record validators and JSONL I/O of ``srjudge.records``: a table of good and bad rows."""

from __future__ import annotations

import copy
import json
import math

import pytest

from srjudge.records import (
    Judgment,
    Message,
    PairwiseExample,
    PointwiseExample,
    PreferencePair,
    RecordError,
    Rubric,
    example_from_dict,
    judgment_from_dict,
    load_examples,
    pair_from_dict,
    rubric_from_dict,
    to_dict,
    write_jsonl,
)

RUBRIC = {
    "criteria": "Is the answer correct?",
    "score_descriptions": ["wrong", "mostly wrong", "half right", "mostly right", "right"],
}
POINTWISE = {
    "kind": "pointwise",
    "id": "mt-1",
    "context": [{"role": "user", "content": "What is 2 + 2?"}],
    "response": "4",
    "rubric": RUBRIC,
    "reference_answer": "4",
    "gold_score": 5,
    "gold_rationale": "Correct.",
}
PAIRWISE = {
    "kind": "pairwise",
    "id": "rb-1",
    "context": [{"role": "user", "content": "What is 2 + 2?"}],
    "response_1": "4",
    "response_2": "5",
    "rubric": RUBRIC,
    "gold_preference": 1,
}


def _with(base: dict, path: str, value: object) -> dict:
    """A deep copy of ``base`` with the dotted ``path`` set (``value=...`` deletes it)."""
    row = copy.deepcopy(base)
    *parents, last = path.split(".")
    target = row
    for p in parents:
        target = target[int(p)] if p.isdigit() else target[p]
    if value is ...:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return row


# (row, field named by the error, fragment of the message)
BAD_ROWS = [
    (_with(POINTWISE, "id", ...), "id", "missing"),
    (_with(POINTWISE, "response", ...), "response", "missing"),
    (_with(POINTWISE, "response", ""), "response", "empty"),
    (_with(POINTWISE, "response", "  \n"), "response", "empty"),
    (_with(POINTWISE, "response", 42), "response", "expected a string"),
    (_with(POINTWISE, "context", []), "context", "non-empty list"),
    (_with(POINTWISE, "context", [{"role": "bot", "content": "x"}]), "context[0].role", "one of"),
    (_with(POINTWISE, "context", [{"role": "user"}]), "context[0].content", "missing"),
    (_with(POINTWISE, "context", ["hi"]), "context[0]", "expected an object"),
    (_with(POINTWISE, "rubric", "be good"), "rubric", "expected an object"),
    (_with(POINTWISE, "rubric.criteria", ""), "rubric.criteria", "empty"),
    (
        _with(POINTWISE, "rubric.score_descriptions", ["a", "b", "c", "d"]),
        "rubric.score_descriptions",
        "got 4",
    ),
    (_with(POINTWISE, "rubric.score_descriptions.2", ""), "rubric.score_descriptions[2]", "empty"),
    (
        _with(POINTWISE, "rubric.score_descriptions", "a b c d e"),
        "rubric.score_descriptions",
        "list",
    ),
    (_with(POINTWISE, "gold_score", 0), "gold_score", "outside 1-5"),
    (_with(POINTWISE, "gold_score", 6), "gold_score", "outside 1-5"),
    (_with(POINTWISE, "gold_score", math.nan), "gold_score", "outside 1-5"),
    (_with(POINTWISE, "gold_score", True), "gold_score", "expected a number"),
    (_with(POINTWISE, "gold_score", "4"), "gold_score", "expected a number"),
    (_with(POINTWISE, "meta", [1]), "meta", "expected an object"),
    (_with(POINTWISE, "kind", "listwise"), "kind", "expected 'pointwise' or 'pairwise'"),
    (_with(PAIRWISE, "response_2", ""), "response_2", "empty"),
    (_with(PAIRWISE, "gold_preference", 3), "gold_preference", "expected 1, 2"),
    (_with(PAIRWISE, "gold_preference", "A"), "gold_preference", "expected 1, 2"),
    (_with(PAIRWISE, "gold_preference", True), "gold_preference", "expected 1, 2"),
    ([POINTWISE], "<row>", "expected a JSON object"),
]


@pytest.mark.parametrize(("row", "field", "message"), BAD_ROWS)
def test_bad_rows_name_their_field(row, field, message):
    with pytest.raises(RecordError) as info:
        example_from_dict(row)
    assert info.value.field == field
    assert message in info.value.message


def test_pointwise_row_loads():
    ex = example_from_dict(POINTWISE)
    assert isinstance(ex, PointwiseExample)
    assert ex.context == [Message("user", "What is 2 + 2?")]
    assert ex.rubric.score_descriptions[4] == "right"
    assert ex.gold_score == 5 and ex.meta == {}


def test_pairwise_row_loads_and_kind_is_inferred():
    row = _with(PAIRWISE, "kind", ...)
    ex = example_from_dict(row)
    assert isinstance(ex, PairwiseExample) and ex.gold_preference == 1


@pytest.mark.parametrize(
    ("value", "expected"), [(1, 1), (2, 2), ("tie", "tie"), ("1", 1), ("2", 2)]
)
def test_preference_values(value, expected):
    assert example_from_dict(_with(PAIRWISE, "gold_preference", value)).gold_preference == expected


def test_bare_string_context_is_one_user_turn():
    ex = example_from_dict(_with(POINTWISE, "context", "Hi there"))
    assert ex.context == [Message("user", "Hi there")]


def test_rubric_descriptions_as_numbered_object():
    descs = {"5": "e", "1": "a", "3": "c", "2": "b", "4": "d"}
    rubric = rubric_from_dict({"criteria": "c", "score_descriptions": descs})
    assert rubric.score_descriptions == ("a", "b", "c", "d", "e")
    assert rubric.items()[0] == {"score": 1, "description": "a"}


def test_fractional_gold_score_is_allowed():
    assert example_from_dict(_with(POINTWISE, "gold_score", 3.6667)).gold_score == 3.6667


def test_jsonl_round_trip(tmp_path):
    examples = [example_from_dict(POINTWISE), example_from_dict(PAIRWISE)]
    path = tmp_path / "x.jsonl"
    assert write_jsonl(path, examples) == 2
    back = load_examples(path)
    assert back == examples
    assert (
        json.loads(path.read_text().splitlines()[0])["rubric"]["score_descriptions"][0] == "wrong"
    )


def test_load_examples_is_strict_and_names_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(
        json.dumps(POINTWISE) + "\n\n" + json.dumps(_with(POINTWISE, "gold_score", 9)) + "\n"
    )
    with pytest.raises(RecordError) as info:
        load_examples(path)
    assert info.value.field == "gold_score"
    assert ":3:" in str(info.value)


def test_judgment_ok_and_round_trip():
    j = Judgment("mt-1", "pointwise", "Good. [RESULT] 4", "Good.", 4, model="m", seed=1)
    assert j.ok
    assert judgment_from_dict(to_dict(j)) == j
    failed = Judgment("mt-1", "pointwise", "???", None, None, parse_error="no [RESULT]")
    assert not failed.ok


def test_preference_pair_round_trip():
    pair = PreferencePair(
        "mt-1",
        [Message("user", "judge this")],
        "good [RESULT] 4",
        "bad [RESULT] 1",
        4,
        1,
        "correct_answer",
        "chosen matches gold 4",
    )
    assert pair_from_dict(json.loads(json.dumps(to_dict(pair)))) == pair


def test_rubric_is_hashable_and_frozen():
    rubric = Rubric("c", ("a", "b", "c", "d", "e"))
    assert hash(rubric) == hash(Rubric("c", ("a", "b", "c", "d", "e")))
