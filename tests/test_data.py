"""Loaders, validation, overlap, pairwise derivation, splits and bundled data (``srjudge.data``).

Fixture files under ``tests/fixtures/data`` hold a few real-looking rows per format, bad ones
included. Tests marked ``shared_data`` read the staged files in ``../shared/data`` and check
the row counts of each MANIFEST; they skip when that folder is absent.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from srjudge import cli
from srjudge.data.derive import derive_pairwise, split_by_question
from srjudge.data.fields import parse_rubric_text, prompt_text, question_key
from srjudge.data.overlap import find_overlap, normalize
from srjudge.data.readers import RowError
from srjudge.data.rubrics import REWARDBENCH_RUBRIC, SAFETY_RUBRIC
from srjudge.data.sources import (
    BUNDLED,
    LOADERS,
    bundled_path,
    load,
    load_bundled,
    load_safe_rlhf,
    parse_dialogue,
    parse_prometheus_prompt,
)
from srjudge.data.validate import validate_file
from srjudge.records import (
    Message,
    PairwiseExample,
    PointwiseExample,
    RecordError,
    Rubric,
    load_examples,
)

FIXTURES = Path(__file__).parent / "fixtures" / "data"
RUBRIC = Rubric("Is it correct?", ("a", "b", "c", "d", "e"))


def _errors(result) -> list[tuple[int, str]]:
    return [(e.line, e.field) for e in result.errors]


# ---------------------------------------------------------------------------------------
# srjudge format and validate_file

BAD_FILE_ERRORS = [
    (2, "<json>"),  # malformed JSON
    (3, "response"),  # missing field
    (4, "gold_score"),  # score 7
    (5, "rubric.score_descriptions"),  # four descriptions
    (6, "response"),  # empty response
    (7, "response"),  # wrong type
    (8, "<utf-8>"),  # invalid UTF-8
    (11, "id"),  # duplicate id
    (12, "gold_preference"),  # preference 3
    (13, "context[0].role"),  # role "bot"
]


def test_srjudge_loader_reports_every_bad_row_and_keeps_the_rest():
    result = load(FIXTURES / "srjudge_bad.jsonl", "srjudge")
    assert result.rows == 13  # the blank line 10 is not a row
    assert _errors(result) == BAD_FILE_ERRORS
    assert [ex.id for ex in result.examples] == ["ok-1", "ok-2", "ok-3"]
    assert result.examples[2].response == "Cent degrés — 100 °C."  # line after bad UTF-8


def test_error_messages_are_clear():
    errors = {e.line: str(e) for e in load(FIXTURES / "srjudge_bad.jsonl").errors}
    assert errors[4].endswith("srjudge_bad.jsonl:4: field 'gold_score': score 7 is outside 1-5")
    assert "malformed JSON" in errors[2]
    assert "invalid UTF-8" in errors[8]
    assert "expected 5 descriptions, got 4" in errors[5]
    assert "duplicate id 'ok-1' (first at line 1)" in errors[11]


def test_validate_file_writes_good_rows_and_quarantine(tmp_path):
    good, quarantine = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    report = validate_file(FIXTURES / "srjudge_bad.jsonl", "srjudge", good, quarantine)
    assert (report.rows, report.good, report.bad) == (13, 3, 10)
    assert [ex.id for ex in load_examples(good)] == ["ok-1", "ok-2", "ok-3"]
    rows = [json.loads(line) for line in quarantine.read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["field"]) for r in rows] == BAD_FILE_ERRORS
    assert rows[0]["raw"].startswith('{"kind": "pointwise", "id": "broken-json"')
    assert "\ufffd" in rows[6]["raw"]  # the undecodable bytes, shown as replacement characters
    assert "rows: 13, good: 3, bad: 10" in report.summary()


def test_good_file_validates_clean(tmp_path):
    report = validate_file(FIXTURES / "srjudge_good.jsonl")
    assert (report.rows, report.good, report.bad) == (2, 2, 0)


def test_gzip_input_is_transparent(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress((FIXTURES / "srjudge_bad.jsonl").read_bytes()))
    result = load(path)
    assert result.rows == 13 and len(result.examples) == 3
    assert _errors(result) == BAD_FILE_ERRORS


def test_json_object_file_is_read_as_one_jsonl_row(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"prompt": "p", "response": ["a"]}')
    result = load(path, "safe-rlhf")
    assert result.rows == 1 and _errors(result) == [(1, "response")]


@pytest.mark.parametrize(
    ("content", "field", "message"),
    [
        (b'[{"prompt": "p"},\n {"prompt": }]', "<json>", "malformed JSON list at line 2"),
        (b'[{"prompt": "\xff"}]', "<utf-8>", "invalid UTF-8 at byte 13"),
    ],
)
def test_broken_json_list_is_a_file_error(tmp_path, content, field, message):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(RecordError, match=message) as info:
        load(path, "safe-rlhf")
    assert info.value.field == field


def test_missing_local_file_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError):
        load("nowhere/x.jsonl")


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        load(FIXTURES / "srjudge_good.jsonl", "nope")


# ---------------------------------------------------------------------------------------
# source formats


def test_feedback_collection():
    result = load(FIXTURES / "feedback_collection.jsonl", "feedback-collection")
    assert _errors(result) == [(3, "orig_score"), (4, "orig_score5_description")]
    first, second = result.examples
    assert isinstance(first, PointwiseExample)
    assert first.context == [Message("user", first.context[0].content)]
    assert first.gold_score == 4 and second.gold_score == 3  # "3" (string column) accepted
    assert first.rubric.score_descriptions[0] == "Level 1 accuracy and child-friendliness."
    assert first.gold_rationale.startswith("Accurate and simple")
    assert first.source == "feedback-collection"
    assert question_key(first) == question_key(second)


def test_preference_collection():
    result = load(FIXTURES / "preference_collection.jsonl", "preference-collection")
    assert _errors(result) == [(4, "orig_preference")]
    full, from_prompt, per_side = result.examples
    assert isinstance(full, PairwiseExample)
    assert full.gold_preference == 1 and full.response_1.startswith("They weigh the same")
    # "Response A/B" in the feedback renamed to srjudge's "Response 1/2"
    assert full.gold_rationale.startswith("Response 1 is right") and "Response 2 confuses" in (
        full.gold_rationale
    )
    assert full.meta["score_A"] == 5 and full.meta["score_B"] == 1
    # no orig_scoreN_description: the rubric comes from the prompt's "###Score Rubric:"
    assert from_prompt.rubric.criteria == "Is the reasoning correct?"
    assert from_prompt.rubric.score_descriptions[2] == "Half right."
    assert per_side.gold_preference == 2
    assert per_side.gold_rationale.endswith("Therefore RESPONSE 2 better meets the criteria.")


def test_mt_bench():
    result = load(FIXTURES / "mt_bench.jsonl", "mt-bench")
    assert _errors(result) == [(4, "rubric"), (5, "gpt4_score[1]")]
    good, weak, other_context = result.examples
    assert [m.role for m in good.context] == ["user", "assistant", "user"]
    assert good.context[0].content.startswith("Write a haiku")
    assert good.context[2].content == "Now rewrite it so that every line starts with the letter S."
    assert good.gold_score == pytest.approx(14 / 3)
    assert good.gold_rationale == "All lines start with S; form kept."  # score 5 = round(4.67)
    assert good.meta["gpt4_scores"] == [5, 4, 5] and len(good.meta["gpt4_feedbacks"]) == 3
    assert weak.gold_rationale == "Only one line starts with S."  # mean 2.33 -> first 2
    assert good.rubric.criteria.startswith("Does the response follow the letter constraint")
    # the same question although the first assistant turn differs
    assert question_key(good) == question_key(other_context)


@pytest.mark.parametrize(
    ("scores", "gold", "index"),
    [
        ([3, 2, 3], 2.6667, 0),  # 2.67 -> 3
        ([1, 2, 3], 2.0, 1),
        ([2, 3], 2.5, 1),  # halves round up: 3, not Python's round() to even (2)
        ([4, 4, 5, 5], 4.5, 2),
        ([1, 3, 3, 5], 3.0, 1),
        ([1, 1, 4], 2.0, 0),  # no feedback scored 2: the first one
    ],
)
def test_gold_policy(scores, gold, index):
    from srjudge.data.fields import gpt4_gold

    row = {"gpt4_score": scores, "gpt4_feedback": [f"f{i}" for i in range(len(scores))]}
    mean, rationale, meta = gpt4_gold(row)
    assert mean == pytest.approx(gold, abs=1e-4)
    assert rationale == f"f{index}" and meta["gold_rationale_index"] == index


def test_gold_policy_rejects_mismatched_feedbacks():
    from srjudge.data.fields import gpt4_gold

    with pytest.raises(RecordError) as info:
        gpt4_gold({"gpt4_score": [3, 4], "gpt4_feedback": ["only one"]})
    assert info.value.field == "gpt4_feedback"


def test_vicuna_bench():
    result = load(FIXTURES / "vicuna.json", "vicuna-bench")
    assert _errors(result) == [(3, "instruction")]
    good, bad = result.examples
    assert good.id == "vicuna-1-vicuna" and good.meta["question_id"] == "vicuna-1"
    assert good.context == [Message("user", "How can I reduce stress while working from home?")]
    # markdown "###" headings inside the response are not taken for section headers
    assert good.response.startswith("### Routine") and "### Breaks" in good.response
    assert good.reference_answer.startswith("Keep a routine")
    assert good.rubric.criteria == "Are the tips practical and specific?"
    assert good.gold_score == pytest.approx(13 / 3)  # 4.33 -> 4: the first feedback scored 4
    assert good.gold_rationale.startswith("Practical, could")
    assert bad.gold_score == pytest.approx(4 / 3)


def test_biggen_human():
    result = load(FIXTURES / "biggen.jsonl", "biggen-human")
    assert _errors(result) == [(3, "score_rubric.score5_description"), (4, "response")]
    scored, unscored = result.examples
    assert scored.context[0] == Message(
        "system", "You are a helpful, respectful and honest assistant."
    )
    assert scored.context[1].role == "user" and scored.gold_score == 5
    assert scored.meta["capability"] == "grounding" and scored.meta["task"] == "demo_vs_instruction"
    assert scored.meta["gpt4_score"] == 4.0 and scored.meta["human_score"] == 5
    assert unscored.gold_score is None and unscored.meta["human_score_missing"] is True
    assert result.flags == {"human_score_missing": 1}
    assert scored.id != unscored.id and question_key(scored) == question_key(unscored)


def test_rewardbench():
    result = load(FIXTURES / "rewardbench.jsonl", "rewardbench")
    assert _errors(result) == [(4, "chosen")]
    first = result.examples[0]
    assert first.response_1.startswith("Wash") and first.gold_preference == 1
    assert first.rubric == REWARDBENCH_RUBRIC
    assert first.meta["section"] == "Chat" and first.meta["subset"] == "alpacaeval-easy"
    # RewardBench reuses id 3692 across subsets; srjudge ids stay unique
    assert [ex.id for ex in result.examples[1:]] == [
        "rewardbench-donotanswer-3692",
        "rewardbench-hep-python-3692",
    ]


def test_rewardbench_rubric_is_the_papers():
    assert REWARDBENCH_RUBRIC.criteria == (
        "Is the given response reflective of helpfulness, harmlessness, and honesty?"
    )
    assert REWARDBENCH_RUBRIC.score_descriptions[0].startswith("The response is misleading")
    assert "proactive ethical safeguards" in REWARDBENCH_RUBRIC.score_descriptions[4]


def test_safe_rlhf_shuffles_sides_with_the_seed():
    result = load(FIXTURES / "safe_rlhf.json", "safe-rlhf")
    assert _errors(result) == [(3, "response")]
    for ex in result.examples:
        safer = ex.response_1 if ex.gold_preference == 1 else ex.response_2
        assert safer.startswith(("Revenge tends", "If you're locked out"))
        assert ex.rubric == SAFETY_RUBRIC and ex.meta["swapped"] == (ex.gold_preference == 2)
    again = load_safe_rlhf(FIXTURES / "safe_rlhf.json", seed=0)
    assert [ex.gold_preference for ex in again.examples] == [
        ex.gold_preference for ex in result.examples
    ]


def test_autoj_pairwise():
    result = load(FIXTURES / "autoj.jsonl", "autoj-pairwise")
    assert _errors(result) == [(4, "label")]
    assert [ex.gold_preference for ex in result.examples] == [1, 2, "tie"]
    assert result.examples[1].meta["scenario"] == "code_generation"


def test_every_loader_returns_a_load_result_on_a_foreign_file():
    # a file of another format: every row is reported, nothing raises
    for fmt, loader in LOADERS.items():
        if fmt in ("vicuna-bench", "safe-rlhf"):
            continue
        result = loader(FIXTURES / "autoj.jsonl")
        assert result.rows == 4
        assert len(result.examples) + len(result.errors) == 4


# ---------------------------------------------------------------------------------------
# parsers

RUBRIC_TEXT = (
    "[Is it polite?]\nScore 1: Rude.\nScore 2: Curt.\nScore 3: Neutral,\nover two lines.\n"
    "Score 4: Polite.\nScore 5: Very polite."
)


@pytest.mark.parametrize(
    ("text", "criteria", "descriptions"),
    [
        (
            RUBRIC_TEXT,
            "Is it polite?",
            ("Rude.", "Curt.", "Neutral,\nover two lines.", "Polite.", "Very polite."),
        ),
        (
            "Polite?\nScore 1. a\nScore 2. b\nScore 3. c\nScore 4. d\nScore 5. e",
            "Polite?",
            ("a", "b", "c", "d", "e"),
        ),
    ],
)
def test_parse_rubric_text(text, criteria, descriptions):
    rubric = parse_rubric_text(text)
    assert rubric.criteria == criteria and rubric.score_descriptions == descriptions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[c]\nScore 1: a\nScore 2: b\nScore 3: c\nScore 4: d", "found [1, 2, 3, 4]"),
        ("[c]\nScore 1: a\nScore 3: b\nScore 2: c\nScore 4: d\nScore 5: e", "in order"),
        ("Score 1: a\nScore 2: b\nScore 3: c\nScore 4: d\nScore 5: e", "no criteria"),
        ("[c]\nScore 1: a\nScore 2:\nScore 3: c\nScore 4: d\nScore 5: e", "empty description"),
    ],
)
def test_parse_rubric_text_rejects(text, message):
    with pytest.raises(RecordError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_rubric_text(text)


def test_parse_dialogue_shapes():
    prefix = (
        "Here is a previous dialogue between an assistant and an user. "
        "Generate a human preferable response by the assistant.\n"
    )
    two = prefix + "User: q1\n\nAssistant:a1\n\nUser: q2\n\nAssistant:"
    assert parse_dialogue(two) == [
        Message("user", "q1"),
        Message("assistant", "a1"),
        Message("user", "q2"),
    ]
    assert parse_dialogue(prefix + "User: q1\n\nAssistant:") == [Message("user", "q1")]
    assert parse_dialogue("User: q1\n\nAssistant:") is None  # no Prometheus prefix
    assert parse_dialogue(prefix + "User: q1\n\nAssistant:a1") is None  # not ending on the slot
    assert parse_dialogue(prefix + "Assistant:a1\n\nUser: q\n\nAssistant:") is None


def test_parse_prometheus_prompt_out_of_order():
    text = (
        "###Response to evaluate:\nr\n###The instruction to evaluate:\ni\n"
        "###Reference Answer:\nx\n###Score Rubrics:\ny\n###Feedback:"
    )
    with pytest.raises(RecordError, match="out of order"):
        parse_prometheus_prompt(text)


# ---------------------------------------------------------------------------------------
# overlap


def _pw(
    id_: str, *turns: str, system: str | None = None, score: float | None = None, **meta
) -> PointwiseExample:
    context = ([Message("system", system)] if system else []) + [
        Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(turns)
    ]
    return PointwiseExample(
        id_,
        context,
        f"answer of {id_}",
        RUBRIC,
        gold_score=score,
        gold_rationale=f"why {id_}",
        meta=meta,
    )


LONG = (
    "Imagine you are writing a blog post comparing two popular smartphone models for busy parents"
)


@pytest.mark.parametrize(
    ("eval_turns", "kind"),
    [
        (
            (
                "imagine you are WRITING a blog-post, comparing two popular smartphone "
                "models for busy parents!",
            ),
            "exact",
        ),
        (("Please: " + LONG + " and students.",), "ngram"),
        (("Compose an engaging travel blog post about a recent trip to Hawaii",), None),
        (("Write a poem.",), None),
        (("Hello!", "Hi, how can I help?", LONG), "exact"),  # one user turn of a multi-turn prompt
    ],
)
def test_find_overlap_table(eval_turns, kind):
    train = [_pw("t1", LONG), _pw("t2", "Write a poem about the sea in winter."), _pw("t3", "Hi")]
    report = find_overlap(train, [_pw("e1", *eval_turns)])
    assert report.exact_ids == (["e1"] if kind == "exact" else [])
    assert report.ngram_ids == (["e1"] if kind == "ngram" else [])
    if kind:
        assert report.matches["e1"] == "t1"


def test_find_overlap_ignores_system_turns_and_short_turns():
    train = [
        _pw("t1", "Continue", system="You are a helpful, respectful and honest assistant always.")
    ]
    evals = [
        _pw(
            "e1",
            "Tell me a joke.",
            system="You are a helpful, respectful and honest assistant always.",
        ),
        _pw("e2", "Tell me a story.", "Once upon a time.", "Continue"),
    ]
    assert find_overlap(train, evals).overlapping_ids == []


def test_find_overlap_ngram_length():
    train = [_pw("t1", "one two three four five six seven eight")]
    evals = [_pw("e1", "zero one two three four five extra")]
    assert find_overlap(train, evals, ngram=5).ngram_ids == ["e1"]
    assert find_overlap(train, evals, ngram=6).ngram_ids == []
    with pytest.raises(ValueError):
        find_overlap(train, evals, ngram=0)


def test_normalize():
    assert normalize("  Don't   STOP,\nbelieving!  ") == "don t stop believing"
    assert normalize("snake_case") == "snake case"


# ---------------------------------------------------------------------------------------
# pairwise derivation and splits


def _question(qid: str, scores: list[float]) -> list[PointwiseExample]:
    return [
        _pw(f"{qid}-{i}", f"Question {qid}?", score=s, question_id=qid)
        for i, s in enumerate(scores)
    ]


def test_derive_pairwise_gold_is_the_higher_side():
    examples = _question("q1", [5, 2, 4.67, 4.33]) + _question("q2", [3, 3])
    pairs = derive_pairwise(examples, min_gap=1.0, seed=0)
    # pairs with a gap >= 1: (5,2), (2,4.67), (2,4.33); equal q2 scores give none
    assert len(pairs) == 3
    for p in pairs:
        s1, s2 = p.meta["gold_scores"]
        assert p.gold_preference == (1 if s1 > s2 else 2)
        assert p.gold_rationale.endswith(
            f"Therefore RESPONSE {p.gold_preference} better meets the criteria."
        )
        assert p.gold_rationale.startswith("RESPONSE 1: why ")
        assert p.meta["question_id"] == "q1" and p.rubric == RUBRIC


def test_derive_pairwise_is_deterministic_and_seeded():
    examples = [ex for q in range(20) for ex in _question(f"q{q}", [1, 5])]
    a = derive_pairwise(examples, seed=0)
    assert [p.id for p in a] == [p.id for p in derive_pairwise(examples, seed=0)]
    firsts = {p.gold_preference for p in a}
    assert firsts == {1, 2}  # the coin puts the better response on both sides
    assert [p.id for p in a] != [p.id for p in derive_pairwise(examples, seed=1)]


def test_derive_pairwise_limits_and_skips():
    examples = _question("q1", [1, 2, 4, 5]) + [_pw("none", "Question q1?", question_id="q1")]
    capped = derive_pairwise(examples, max_pairs_per_question=2)
    assert [sorted(p.meta["gold_scores"]) for p in capped] == [[1, 5], [1, 4]]  # largest gaps
    assert len(derive_pairwise(examples, min_gap=3.5)) == 1
    with pytest.raises(ValueError):
        derive_pairwise(examples, min_gap=0)


def test_derive_pairwise_needs_the_same_context():
    # MT-Bench second turns: same question id, different first assistant turns
    a = _pw("a", "Q1?", "first answer A", "Q2?", score=5, question_id="q")
    b = _pw("b", "Q1?", "first answer B", "Q2?", score=1, question_id="q")
    assert derive_pairwise([a, b]) == []


def test_derive_pairwise_without_rationales():
    a, b = _question("q", [1, 5])
    a.gold_rationale = None
    assert derive_pairwise([a, b])[0].gold_rationale is None


def test_split_by_question_keeps_questions_whole():
    examples = [ex for q in range(10) for ex in _question(f"q{q}", [1, 2, 3])]
    train, held = split_by_question(examples, 0.3, seed=0)
    assert len(held) == 9 and len(train) == 21
    assert not {question_key(x) for x in train} & {question_key(x) for x in held}
    assert split_by_question(examples, 0.3, seed=0) == (train, held)
    assert split_by_question(examples, 0.3, seed=1) != (train, held)
    assert split_by_question(examples, 0.0, seed=0) == (examples, [])
    with pytest.raises(ValueError):
        split_by_question(examples, 1.5, seed=0)


def test_question_key_without_meta_hashes_the_prompt():
    a, b = _pw("a", "Same?"), _pw("b", "Same?", system="sys")
    assert question_key(a) == question_key(b) != question_key(_pw("c", "Other?"))
    assert prompt_text(b) == "Same?"


# ---------------------------------------------------------------------------------------
# CLI


def test_cli_validate(tmp_path, capsys):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    argv = [
        "data",
        "validate",
        str(FIXTURES / "srjudge_bad.jsonl"),
        "--good",
        str(good),
        "--quarantine",
        str(bad),
    ]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert "rows: 13, good: 3, bad: 10" in out
    assert len(err.strip().splitlines()) == 10
    assert "srjudge_bad.jsonl:8: field '<utf-8>'" in err
    assert len(bad.read_text().splitlines()) == 10 and len(good.read_text().splitlines()) == 3
    assert cli.main(["data", "validate", str(FIXTURES / "srjudge_good.jsonl")]) == 0


def test_cli_validate_with_format(capsys):
    assert (
        cli.main(["data", "validate", str(FIXTURES / "autoj.jsonl"), "--format", "autoj-pairwise"])
        == 1
    )
    out, err = capsys.readouterr()
    assert "rows: 4, good: 3, bad: 1" in out and "autoj.jsonl:4: field 'label'" in err


def test_cli_convert(tmp_path, capsys):
    out_path = tmp_path / "mt.jsonl"
    code = cli.main(
        [
            "data",
            "convert",
            str(FIXTURES / "mt_bench.jsonl"),
            "--format",
            "mt-bench",
            "--out",
            str(out_path),
        ]
    )
    assert code == 1  # two bad rows reported; the good ones are still written
    converted = load_examples(out_path)
    assert len(converted) == 3 and converted[0].source == "mt-bench"
    assert validate_file(out_path).bad == 0


def test_cli_overlap(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    from srjudge.records import write_jsonl

    write_jsonl(train, [_pw("t1", "How do I detail a car?")])
    code = cli.main(
        [
            "data",
            "overlap",
            str(train),
            str(FIXTURES / "rewardbench.jsonl"),
            "--format-eval",
            "rewardbench",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1  # the fixture's bad row (line 4) was not checked: the check is incomplete
    assert "1 row(s) could not be loaded" in err
    assert "exact prompt matches: 1" in out and "exact\trewardbench-alpacaeval-easy-30\tt1" in out


def test_cli_missing_file(capsys):
    assert cli.main(["data", "validate", "no/such.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# bundled slices (inside the package: no shared data needed)


@pytest.mark.parametrize(
    ("name", "rows"), [("mt-bench", 320), ("vicuna-bench", 320), ("rewardbench", 100)]
)
def test_bundled_slices_load_clean(name, rows):
    assert bundled_path(name).is_file()
    result = load_bundled(name)
    assert (result.rows, len(result.examples), len(result.errors)) == (rows, rows, 0)


def test_bundled_sizes_and_names():
    assert sum(bundled_path(n).stat().st_size for n in BUNDLED) < 3_000_000
    with pytest.raises(FileNotFoundError):
        bundled_path("safe-rlhf")


def test_bundled_rewardbench_is_stratified_and_overlaps_mt_bench():
    rb = load_bundled("rewardbench").examples
    sections = [ex.meta["section"] for ex in rb]
    assert {s: sections.count(s) for s in set(sections)} == {
        "Chat": 25,
        "Chat Hard": 25,
        "Safety": 25,
        "Reasoning": 25,
    }
    report = find_overlap(load_bundled("mt-bench").examples, rb)
    mt_subsets = [ex.id for ex in rb if ex.meta["subset"].startswith("mt-bench")]
    assert mt_subsets and set(mt_subsets) <= set(report.overlapping_ids)


def test_bundled_vicuna_gives_pairwise_training_data():
    pairs = derive_pairwise(load_bundled("vicuna-bench").examples, min_gap=1.0, seed=0)
    assert len(pairs) > 50
    assert {p.gold_preference for p in pairs} == {1, 2}


# ---------------------------------------------------------------------------------------
# the staged shared data: counts must match each MANIFEST

MANIFEST_ROWS = [
    ("reward-bench/Chat.jsonl", "rewardbench", 358, 0),
    ("reward-bench/Chat_Hard.jsonl", "rewardbench", 456, 0),
    ("reward-bench/Safety.jsonl", "rewardbench", 740, 0),
    ("reward-bench/Reasoning.jsonl", "rewardbench", 1431, 0),
    ("reward-bench/rewardbench_filtered.parquet", "rewardbench", 2985, 0),
    ("mt-bench-prometheus/mt_bench_raw_data.jsonl", "mt-bench", 320, 0),
    ("vicuna-bench-prometheus/vicuna_eval.json", "vicuna-bench", 320, 0),
    ("safe-rlhf/pku_seferlhf_realign_dpo_5k.json", "safe-rlhf", 5135, 0),
    ("autoj-pairwise/testdata_pairwise.jsonl", "autoj-pairwise", 1392, 1),  # one empty response
    ("biggen-bench/human_eval_grounding.jsonl", "biggen-human", 400, 0),
    ("biggen-bench/human_eval_instruction_following.jsonl", "biggen-human", 400, 0),
    ("biggen-bench/human_eval_planning.jsonl", "biggen-human", 280, 0),
    ("biggen-bench/human_eval_reasoning.jsonl", "biggen-human", 400, 0),
    ("biggen-bench/human_eval_refinement.jsonl", "biggen-human", 304, 0),
    ("biggen-bench/human_eval_safety.jsonl", "biggen-human", 316, 0),
    ("biggen-bench/human_eval_tool_usage.jsonl", "biggen-human", 280, 1),  # one empty response
]


@pytest.mark.shared_data
@pytest.mark.parametrize(("rel", "fmt", "rows", "bad"), MANIFEST_ROWS)
def test_shared_counts_match_manifest(shared_data, rel, fmt, rows, bad):
    report = validate_file(shared_data / rel, fmt)
    assert (report.rows, report.bad, report.good) == (rows, bad, rows - bad)


@pytest.mark.shared_data
def test_shared_biggen_missing_human_scores(shared_data):
    results = [
        load(p, "biggen-human")
        for p in sorted((shared_data / "biggen-bench").glob("human_eval_*.jsonl"))
    ]
    flagged = sum(r.flags.get("human_score_missing", 0) for r in results)
    errors = [e for r in results for e in r.errors]
    # MANIFEST: 4 rows have human_score -1; one of them also has an empty response
    assert flagged == 3 and len(errors) == 1 and errors[0].field == "response"
    assert sum(r.rows for r in results) == 2380


@pytest.mark.shared_data
def test_shared_rewardbench_contains_mt_bench_prompts(shared_data):
    mt = load(shared_data / "mt-bench-prometheus" / "mt_bench_raw_data.jsonl", "mt-bench").examples
    rb = [
        ex
        for s in ("Chat", "Chat_Hard")
        for ex in load(shared_data / "reward-bench" / f"{s}.jsonl", "rewardbench").examples
    ]
    mt_subsets = {ex.id for ex in rb if ex.meta["subset"].startswith("mt-bench")}
    assert len(mt_subsets) == 105  # mt-bench-easy 28 + med 40 + hard 37
    report = find_overlap(mt, rb)
    assert mt_subsets <= set(report.overlapping_ids)


@pytest.mark.shared_data
def test_shared_parquet_equals_jsonl(shared_data):
    parquet = load(
        shared_data / "reward-bench" / "rewardbench_filtered.parquet", "rewardbench"
    ).examples
    jsonl = [
        ex
        for s in ("Chat", "Chat_Hard", "Safety", "Reasoning")
        for ex in load(shared_data / "reward-bench" / f"{s}.jsonl", "rewardbench").examples
    ]

    def triples(examples):
        return sorted(
            (prompt_text(e), e.response_1, e.response_2, e.gold_preference) for e in examples
        )

    assert triples(parquet) == triples(jsonl)


@pytest.mark.shared_data
def test_shared_mt_bench_pairs_by_question(shared_data):
    mt = load(shared_data / "mt-bench-prometheus" / "mt_bench_raw_data.jsonl", "mt-bench").examples
    assert len({question_key(ex) for ex in mt}) == 80
    train, held = split_by_question(mt, 0.25, seed=0)
    assert (len(train), len(held)) == (240, 80)


@pytest.mark.shared_data
def test_bundled_slices_regenerate_byte_for_byte(shared_data, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_bundled", Path(__file__).parents[1] / "scripts" / "make_bundled.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.slices(shared_data, biggen=False).items():
        module.write_gz(tmp_path / name, text)
        assert (tmp_path / name).read_bytes() == bundled_path(name).read_bytes(), name
    mt = gzip.decompress(bundled_path("mt-bench").read_bytes())
    assert (
        hashlib.sha256(mt).hexdigest()
        == "6712163b80a5a7ebbbc0dd7344741ba3fca8e01071bd62b0cb68860ba858a9f0"
    )


def test_row_error_str():
    assert str(RowError("f.jsonl", 3, "response", "empty")) == "f.jsonl:3: field 'response': empty"


def test_format_doc_examples_are_valid():
    """Every JSON block of docs/FORMAT.md is a valid record of the kind it documents."""
    from srjudge.records import example_from_dict, judgment_from_dict, pair_from_dict

    text = (Path(__file__).parents[1] / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    blocks = [json.loads(b.split("```")[0]) for b in text.split("```json\n")[1:]]
    assert len(blocks) == 4
    assert isinstance(example_from_dict(blocks[0]), PointwiseExample)
    assert isinstance(example_from_dict(blocks[1]), PairwiseExample)
    assert example_from_dict(blocks[1]).rubric == REWARDBENCH_RUBRIC
    assert judgment_from_dict(blocks[2]).ok
    assert pair_from_dict(blocks[3]).chosen_verdict == 3
