"""The meta-judge step of a curation run (``metajudge.meta_judge_inputs``), the one path the
loop's curate stage and ``srjudge curate`` share: batched across inputs, resumable, and read
back exactly as ``curate`` takes it."""

from __future__ import annotations

import json

import pytest

from srjudge import cli
from srjudge.judging.backends import MockBackend, SamplingParams
from srjudge.judging.parsing import BestWorst
from srjudge.records import Judgment, Message, PointwiseExample, Rubric, to_dict, write_jsonl
from srjudge.training.metajudge import (
    meta_judge_inputs,
    meta_params,
    needs_meta_judge,
    pick_best_worst,
    pick_best_worst_many,
    rate_judgments,
    rate_many,
    read_meta_judge_inputs,
)

RUBRIC = Rubric("Is it helpful?", ("useless", "poor", "okay", "good", "excellent"))
PARAMS = SamplingParams(n=1, temperature=0.0, seed=3)


def example(i: int) -> PointwiseExample:
    return PointwiseExample(
        f"p{i}", [Message("user", f"Question {i}?")], "42.", RUBRIC, gold_score=4
    )


def judgments(ex_id: str, *verdicts: int | None) -> list[Judgment]:
    out = []
    for k, v in enumerate(verdicts):
        if v is None:
            out.append(Judgment(ex_id, "pointwise", "garbled", None, None, "no marker", k))
        else:
            raw = f"Reason {k}. [RESULT] {v}"
            out.append(Judgment(ex_id, "pointwise", raw, f"Reason {k}.", v, None, k))
    return out


def rate_by_verdict(prompt, i: int) -> str:
    return f"Judgment Rating: {prompt[-1].content.split('[RESULT] ')[1][0]}"


EXAMPLES = {f"p{i}": example(i) for i in range(3)}
JUDGED = {
    "p0": judgments("p0", 4, 2),
    "p1": judgments("p1", None, 5),
    "p2": judgments("p2", 1, 3, 3),
}


def test_strategies_that_need_a_meta_judge():
    strategies = ("correct_answer", "majority_vote", "meta_judge", "rationale_meta")
    assert [s for s in strategies if needs_meta_judge(s)] == ["meta_judge", "rationale_meta"]
    assert needs_meta_judge("preference_reversal")


def test_batched_ratings_equal_the_per_input_ones_in_fewer_calls():
    one_by_one = [rate_judgments(MockBackend(rate_by_verdict), EXAMPLES[i], JUDGED[i], PARAMS)
                  for i in JUDGED]  # fmt: skip
    backend = MockBackend(rate_by_verdict)
    together = rate_many(backend, [(EXAMPLES[i], JUDGED[i]) for i in JUDGED], PARAMS)
    assert together == one_by_one == [[4, 2], [None, 5], [1, 3, 3]]
    assert len(backend.calls) == 1 and len(backend.calls[0][0]) == 6  # unparsed one not shown


def test_batched_best_worst_skips_inputs_with_fewer_than_two_usable():
    backend = MockBackend(['["ITEM2", "ITEM1"]'])
    items = [(EXAMPLES["p0"], JUDGED["p0"]), (EXAMPLES["p1"], JUDGED["p1"])]
    assert pick_best_worst_many(backend, items, PARAMS) == [BestWorst(2, 1), None]
    assert len(backend.calls) == 1 and len(backend.calls[0][0]) == 1
    single = pick_best_worst(MockBackend(['["ITEM2", "ITEM1"]']), *items[0], PARAMS)
    assert single == BestWorst(2, 1)


def test_meta_judge_inputs_batches_by_the_backends_inputs_per_call(tmp_path):
    backend = MockBackend(rate_by_verdict)
    backend.inputs_per_call = 2
    path = tmp_path / "meta.jsonl"
    extras = meta_judge_inputs("meta_judge", lambda: backend, EXAMPLES, JUDGED, PARAMS, path)
    assert extras == {"p0": {"ratings": [4, 2]}, "p1": {"ratings": [None, 5]},
                      "p2": {"ratings": [1, 3, 3]}}  # fmt: skip
    assert [len(prompts) for prompts, _ in backend.calls] == [3, 3]  # inputs {p0, p1}, {p2}
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0].pop("input_sha256")  # what the answer was made from (a rerun checks it)
    assert lines[0] == {"example_id": "p0", "ratings": [4, 2]}


def test_meta_judge_inputs_resumes_without_a_backend_when_done(tmp_path):
    path = tmp_path / "meta.jsonl"
    first = MockBackend(['["ITEM1", "ITEM2"]'])
    done = meta_judge_inputs("rationale_meta", lambda: first, EXAMPLES, JUDGED, PARAMS, path)
    assert done["p0"] == {"best_worst": BestWorst(1, 2)} and done["p1"] == {"best_worst": None}

    def no_model():
        raise AssertionError("a finished meta-judge step must not load a model")

    again = meta_judge_inputs("rationale_meta", no_model, EXAMPLES, JUDGED, PARAMS, path)
    assert again == done == read_meta_judge_inputs(path)


def test_meta_judge_inputs_continues_an_interrupted_file(tmp_path):
    path = tmp_path / "meta.jsonl"
    first = MockBackend(["Judgment Rating: 1"])
    meta_judge_inputs("meta_judge", lambda: first, EXAMPLES, JUDGED, PARAMS, path)
    path.write_text(path.read_text().splitlines()[0] + "\n")  # interrupted after p0
    backend = MockBackend(rate_by_verdict)
    extras = meta_judge_inputs("meta_judge", lambda: backend, EXAMPLES, JUDGED, PARAMS, path)
    assert extras["p0"] == {"ratings": [1, 1]}  # kept from the interrupted run, not redone
    asked = [p[-1].content for prompts, _ in backend.calls for p in prompts]
    assert not any("Question 0?" in text for text in asked)


def test_strategies_without_a_meta_judge_need_no_backend(tmp_path):
    def no_model():
        raise AssertionError("correct_answer needs no meta-judge")

    path = tmp_path / "meta.jsonl"
    assert meta_judge_inputs("correct_answer", no_model, EXAMPLES, JUDGED, PARAMS, path) == {}
    assert not path.exists()


def test_meta_params_are_greedy_single_answers():
    assert meta_params(64, 9) == SamplingParams(n=1, temperature=0.0, max_new_tokens=64, seed=9)


@pytest.mark.parametrize("strategy", ["meta_judge", "rationale_meta", "preference_reversal"])
def test_curate_verb_runs_the_meta_judge_step_and_resumes(tmp_path, strategy, capsys):
    inputs, judged, out = tmp_path / "inputs.jsonl", tmp_path / "j.jsonl", tmp_path / "pairs.jsonl"
    write_jsonl(inputs, EXAMPLES.values())
    write_jsonl(
        judged,
        [{"example_id": i, "kind": "pointwise", "judgments": [to_dict(j) for j in js]}
         for i, js in JUDGED.items()],
    )  # fmt: skip
    answers = {
        "meta_judge": ["Judgment Rating: 5", "Judgment Rating: 1"],
        "rationale_meta": ['["ITEM1", "ITEM2"]'],
        "preference_reversal": ["Vague and wrong. [RESULT] 1"],
    }
    argv = ["curate", "--inputs", str(inputs), "--judgments", str(judged), "--out", str(out),
            "--strategy", strategy, "--meta-model", "m", "--backend", "mock"]  # fmt: skip
    for answer in answers[strategy]:
        argv += ["--mock-output", answer]
    assert cli.main(argv) == 0
    meta = tmp_path / "pairs.meta.jsonl"
    assert len(meta.read_text().splitlines()) == 3
    first = out.read_bytes()
    assert first  # some pairs were kept
    before = meta.read_bytes()
    assert cli.main(argv) == 0
    assert meta.read_bytes() == before and out.read_bytes() == first


def test_curate_verb_refuses_a_meta_strategy_without_a_meta_model(tmp_path, capsys):
    argv = ["curate", "--inputs", "x", "--judgments", "y", "--out", str(tmp_path / "p.jsonl"),
            "--strategy", "meta_judge"]  # fmt: skip
    assert cli.main(argv) == 2
    assert "needs --meta-model" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
