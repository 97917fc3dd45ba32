"""The whole judge path on the mock backend: grade, compare (both orders), self-consistency,
bounded retries (a failure keeps its raw text and gets no score), expected score, judge_file."""

from __future__ import annotations

import doctest
import json
from collections.abc import Sequence

import pytest

from srjudge.judging import judge as judge_module
from srjudge.judging import sampling as sampling_module
from srjudge.judging.backends import MockBackend, SamplingParams
from srjudge.judging.files import judge_file, summary_path
from srjudge.judging.judge import Judge, majority_vote, score_prefix, swapped
from srjudge.judging.prompts import template_hash
from srjudge.judging.sampling import GREEDY_RETRY_TEMPERATURE, sample_judgments
from srjudge.records import Message, PairwiseExample, PointwiseExample, Rubric, to_dict

RUBRIC = Rubric("Is it helpful?", ("useless", "poor", "okay", "good", "excellent"))


def point(id: str = "p1", response: str = "4.") -> PointwiseExample:
    return PointwiseExample(id, [Message("user", "What is 2+2?")], response, RUBRIC, gold_score=4)


def pair(id: str = "q1", good_first: bool = True) -> PairwiseExample:
    good, bad = "GOOD ANSWER", "BAD ANSWER"
    r1, r2 = (good, bad) if good_first else (bad, good)
    return PairwiseExample(id, [Message("user", "Hi")], r1, r2, RUBRIC, 1 if good_first else 2)


def prefers_good(prompt: Sequence[Message], index: int) -> str:
    """A position-consistent judge: picks whichever response is GOOD ANSWER."""
    user = prompt[-1].content
    first = user.index("GOOD ANSWER") < user.index("BAD ANSWER")
    return f"The good one is better. [RESULT] {1 if first else 2}"


def test_doctests():
    assert doctest.testmod(judge_module).failed == 0
    assert doctest.testmod(sampling_module).failed == 0


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([3], 3),
        ([4, 4, 2], 4),
        ([4, None, None], 4),  # failures do not vote
        ([None, None], None),
        ([1, 5], 1),  # equally close to the mean 3: the one sampled first
        ([5, 1], 5),
        ([2, 5, 3, 3, 5], 3),  # 3 and 5 tie, mean 3.6
        ([1, 1, 5, 5, 5, 1, 2], 1),  # 1 and 5 tie, mean 2.86: 1 is closer
        ([2, 1, 1, 2], 2),  # pairwise tie: first sampled
    ],
)
def test_majority_vote(verdicts, expected):
    assert majority_vote(verdicts) == expected


def test_grade_greedy_one_sample():
    backend = MockBackend(["**Feedback:** Correct and polite. [RESULT] 4"])
    grade = Judge(backend).grade(point())
    assert (grade.verdict, grade.mean, grade.rationale) == (4, 4.0, "Correct and polite.")
    [(prompts, params)] = backend.calls
    assert params.temperature == 0 and params.n == 1
    j = grade.judgments[0]
    assert (j.model, j.template_id, j.temperature, j.top_p, j.seed) == (
        "mock",
        "pointwise",
        0,
        1.0,
        0,
    )
    assert (j.sample_index, j.attempts, j.parse_error) == (0, 1, None)
    assert prompts[0][0].role == "system" and "RESULT" in prompts[0][0].content


def test_grade_samples_majority_and_mean():
    backend = MockBackend(["A. [RESULT] 4", "B. [RESULT] 2", "C. [RESULT] 4"])
    grade = Judge(backend).grade(point(), samples=3, seed=7)
    assert [j.verdict for j in grade.judgments] == [4, 2, 4]
    assert [j.sample_index for j in grade.judgments] == [0, 1, 2]
    assert grade.majority == 4 and grade.mean == pytest.approx(10 / 3)
    assert grade.rationale == "A."
    [(_, params)] = backend.calls
    assert (params.n, params.temperature, params.seed) == (3, 1.0, 7)


def test_unparseable_is_retried_then_recorded_with_raw_text_and_no_score():
    backend = MockBackend(["I think it is a 4 out of 5"])
    grade = Judge(backend, max_retries=2).grade(point())
    j = grade.judgments[0]
    assert j.verdict is None and j.rationale is None and not j.ok
    assert j.parse_error == "no [RESULT] marker"
    assert j.raw == "I think it is a 4 out of 5"
    assert j.attempts == 3
    assert j.meta["earlier_parse_errors"] == ["no [RESULT] marker"] * 2
    assert grade.majority is None and grade.mean is None and grade.parse_failures == 1
    # first call greedy, then two re-samples with fresh seeds (greedy would repeat itself)
    temps = [p.temperature for _, p in backend.calls]
    seeds = [p.seed for _, p in backend.calls]
    assert temps == [0, GREEDY_RETRY_TEMPERATURE, GREEDY_RETRY_TEMPERATURE]
    assert len(set(seeds)) == 3
    assert j.seed == seeds[-1] and j.temperature == GREEDY_RETRY_TEMPERATURE


def test_no_retries_when_max_retries_is_zero():
    backend = MockBackend(["garbage"])
    grade = Judge(backend, max_retries=0).grade(point())
    assert len(backend.calls) == 1 and grade.judgments[0].attempts == 1
    assert grade.verdict is None


def test_retry_resamples_only_failed_slots_and_is_deterministic():
    def run():
        # call 1 (n=3): ok, bad, bad; call 2 (n=2 for the two failures): ok, bad; call 3: ok
        backend = MockBackend(
            ["A. [RESULT] 5", "junk", "junk", "B. [RESULT] 3", "junk", "C. [RESULT] 3"]
        )
        return backend, Judge(backend).grade(point(), samples=3)

    backend, grade = run()
    assert [(j.verdict, j.attempts) for j in grade.judgments] == [(5, 1), (3, 2), (3, 3)]
    assert [p.n for _, p in backend.calls] == [3, 2, 1]
    assert grade.majority == 3 and grade.mean == pytest.approx(11 / 3)
    _, again = run()
    assert [to_dict(j) for j in again.judgments] == [to_dict(j) for j in grade.judgments]


def test_retry_batches_by_failure_count():
    examples = [point("a"), point("b"), point("c")]

    def outputs(prompt, index):
        return "junk"

    backend = MockBackend(outputs)
    results = list(sample_judgments(backend, examples, SamplingParams(n=2), max_retries=1))
    assert [ex.id for ex, _ in results] == ["a", "b", "c"]
    assert all(j.attempts == 2 and j.verdict is None for _, js in results for j in js)
    assert [(len(prompts), p.n) for prompts, p in backend.calls] == [(3, 2), (3, 2)]


def test_batch_size_splits_backend_calls():
    backend = MockBackend(["Ok. [RESULT] 3"])
    examples = [point(str(i)) for i in range(5)]
    out = list(sample_judgments(backend, examples, SamplingParams(), batch_size=2, progress=False))
    assert [len(prompts) for prompts, _ in backend.calls] == [2, 2, 1]
    assert [ex.id for ex, _ in out] == [str(i) for i in range(5)]
    assert all(js[0].example_id == ex.id for ex, js in out)


def test_backend_returning_wrong_count_is_an_error():
    class Short:
        name = "short"

        def generate(self, prompts, params):
            return [["x. [RESULT] 3"]]

    with pytest.raises(RuntimeError, match="returned"):
        Judge(Short()).grade_batch([point("a"), point("b")])


def test_compare_both_orders_consistent():
    backend = MockBackend(prefers_good)
    for good_first, expected in ((True, 1), (False, 2)):
        cmp = Judge(backend).compare(pair(good_first=good_first), both_orders=True)
        assert cmp.majority == expected and cmp.swapped_majority == expected
        assert cmp.consistent is True and cmp.verdict == expected
        # the swapped judgment's verdict is as the model gave it, in the swapped order
        assert cmp.swapped_judgments[0].verdict == 3 - expected
        assert cmp.swapped_judgments[0].meta["order"] == "swapped"
        assert cmp.rationale == "The good one is better."


def test_compare_both_orders_position_bias_is_inconsistent():
    backend = MockBackend(["Always the first. [RESULT] 1"])
    cmp = Judge(backend).compare(pair(), both_orders=True)
    assert (cmp.majority, cmp.swapped_majority, cmp.consistent) == (1, 2, False)
    assert cmp.verdict == 1  # tie of 1 vs 2 -> sampled first (documented)
    prompts, _ = backend.calls[0]
    assert len(prompts) == 2  # both orders in one backend call
    assert prompts[0][-1].content != prompts[1][-1].content


def test_compare_one_order():
    cmp = Judge(MockBackend(prefers_good)).compare(pair(good_first=False), samples=3)
    assert cmp.verdict == 2 and cmp.consistent is None and cmp.swapped_judgments == []
    assert len(cmp.judgments) == 3


def test_compare_unparseable_order_leaves_consistency_unknown():
    def outputs(prompt, index):  # answers only when GOOD ANSWER is RESPONSE 1
        user = prompt[-1].content
        return "[RESULT] 1" if user.index("GOOD") < user.index("BAD") else "no verdict"

    cmp = Judge(MockBackend(outputs), max_retries=0).compare(
        pair(), both_orders=True, score_only=True
    )
    assert (cmp.majority, cmp.swapped_majority, cmp.consistent, cmp.verdict) == (1, None, None, 1)
    assert cmp.parse_failures == 1


def test_swapped_maps_gold():
    ex = pair(good_first=True)
    sw = swapped(ex)
    assert (sw.response_1, sw.response_2, sw.gold_preference) == (ex.response_2, ex.response_1, 2)
    assert sw.id == ex.id and ex.meta == {}


def test_grade_and_compare_reject_the_other_kind():
    judge = Judge(MockBackend(["x"]))
    with pytest.raises(TypeError, match="pointwise"):
        judge.grade(pair())
    with pytest.raises(TypeError, match="pairwise"):
        judge.compare(point())


def test_score_only_needs_no_rationale():
    grade = Judge(MockBackend(["[RESULT] 5"])).grade(point(), score_only=True)
    assert grade.verdict == 5 and grade.judgments[0].template_id == "pointwise_score_only"
    grade = Judge(MockBackend(["[RESULT] 5"]), max_retries=0).grade(point())
    assert grade.verdict is None and grade.judgments[0].parse_error == "empty rationale"


class ScoringMock(MockBackend):
    """A mock that is also a VerdictScorer."""

    def __init__(self, outputs, probs):
        super().__init__(outputs)
        self.probs = probs
        self.prefixes: list[str] = []

    def option_probs(self, prompt, prefix, options):
        self.prefixes.append(prefix)
        assert list(options) == ["1", "2", "3", "4", "5"]
        return self.probs


def test_expected_score():
    backend = ScoringMock(["Good. [RESULT] 4", "junk"], [0.0, 0.1, 0.2, 0.3, 0.4])
    grade = Judge(backend, max_retries=0).grade(point(), samples=2, expected_score=True)
    assert grade.expected_score == pytest.approx(4.0)
    assert grade.score_probs == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert backend.prefixes == ["Good. [RESULT] "]  # only the parsed judgment is scored


def test_expected_score_needs_a_scorer():
    with pytest.raises(TypeError, match="token probabilities"):
        Judge(MockBackend(["x"])).grade(point(), expected_score=True)


def test_score_prefix():
    assert score_prefix("Fine. [RESULT] 3") == "Fine. [RESULT] "
    assert score_prefix("Fine. [ result ] 3") == "Fine. [RESULT] "
    assert score_prefix("no marker") is None


# ---------------------------------------------------------------------------------------
# judge_file


def write_examples(path, examples):
    path.write_text("".join(json.dumps(to_dict(e)) + "\n" for e in examples))
    return path


def test_judge_file_mixed_kinds(tmp_path):
    examples = [point("p1"), pair("q1"), point("p2"), pair("q2", good_first=False)]
    src = write_examples(tmp_path / "in.jsonl", examples)
    out = tmp_path / "out.jsonl"

    def outputs(prompt, index):
        if "GOOD ANSWER" in prompt[-1].content:
            return prefers_good(prompt, index)
        return "Right. [RESULT] 5"

    summary = judge_file(src, out, MockBackend(outputs), both_orders=True, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p1", "q1", "p2", "q2"]
    assert [r["verdict"] for r in rows] == [5, 1, 5, 2]
    assert [r["kind"] for r in rows] == ["pointwise", "pairwise", "pointwise", "pairwise"]
    assert rows[1]["consistent"] is True and len(rows[1]["swapped_samples"]) == 1
    assert "consistent" not in rows[0]
    assert rows[0]["rationale"] == "Right." and rows[0]["parse_error"] is None
    assert summary.examples == summary.written == 4
    assert (summary.judgments, summary.parse_failures, summary.retries) == (6, 0, 0)
    assert (summary.consistent, summary.inconsistent) == (2, 0)
    saved = json.loads(summary_path(out).read_text())
    assert saved["parse_rate"] == 1.0 and saved["judgments"] == 6
    prov = saved["provenance"]
    assert prov["model"] == "mock"
    assert prov["templates"] == {t: template_hash(t) for t in ("pairwise", "pointwise")}
    assert prov["params"]["temperature"] == 0 and prov["seed"] == 0
    assert prov["started"] and prov["input_sha256"]


def test_judge_file_samples_failures_and_retries(tmp_path):
    src = write_examples(tmp_path / "in.jsonl", [point("ok"), point("bad", response="BAD")])
    out = tmp_path / "out.jsonl"

    def outputs(prompt, index):
        if "assistant: BAD" in prompt[-1].content:
            return "I refuse to give a score."
        return f"Fine. [RESULT] {3 + index % 2}"

    summary = judge_file(
        src, out, Judge(MockBackend(outputs)), samples=3, max_retries=1, progress=False
    )
    ok, bad = (json.loads(line) for line in out.read_text().splitlines())
    assert ok["verdict"] == 3 and ok["mean"] == pytest.approx(10 / 3) and len(ok["samples"]) == 3
    assert bad["verdict"] is None and bad["mean"] is None
    assert bad["parse_error"].startswith("no sample parsed")
    assert all(
        s["verdict"] is None and s["raw"] == "I refuse to give a score." for s in bad["samples"]
    )
    assert all(s["attempts"] == 2 for s in bad["samples"])
    assert bad["counts"] == {"judgments": 3, "parse_failures": 3, "retries": 3}
    assert (summary.judgments, summary.parse_failures, summary.retries, summary.no_verdict) == (
        6,
        3,
        3,
        1,
    )
    assert summary.parse_rate == pytest.approx(0.5)
    assert "parse failures: 3" in summary.format()


def test_judge_file_one_sample_failure_keeps_raw(tmp_path):
    src = write_examples(tmp_path / "in.jsonl", [point("a")])
    out = tmp_path / "out.jsonl"
    judge_file(src, out, MockBackend(["Score: 4"]), max_retries=2, progress=False)
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["verdict"] is None and row["raw"] == "Score: 4" and row["attempts"] == 3
    assert row["parse_error"] == "no [RESULT] marker"


def test_judge_file_skips_done_ids(tmp_path):
    examples = [point(str(i)) for i in range(5)]
    src = write_examples(tmp_path / "in.jsonl", examples)
    out = tmp_path / "out.jsonl"
    judge_file(src, out, MockBackend(["A. [RESULT] 2"]), progress=False)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:2]) + "\n")
    backend = MockBackend(["A. [RESULT] 2"])
    summary = judge_file(src, out, backend, progress=False)
    assert (summary.skipped_already_done, summary.judged_this_run, summary.written) == (2, 3, 5)
    assert sum(len(prompts) for prompts, _ in backend.calls) == 3
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == list("01234")
    # a complete file: nothing left to do, the backend is not called
    again = MockBackend(["A. [RESULT] 2"])
    assert judge_file(src, out, again, progress=False).judged_this_run == 0
    assert again.calls == []


def test_judge_file_rejects_duplicate_ids(tmp_path):
    src = write_examples(tmp_path / "in.jsonl", [point("a"), point("a")])
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        judge_file(src, tmp_path / "out.jsonl", MockBackend(["x"]), progress=False)


def test_expected_score_with_a_real_tokenizer(tiny_model_dir):
    """score_prefix + TransformersBackend.option_probs: each verdict is one token after it."""
    from srjudge.judging.backends.transformers import TransformersBackend

    model = TransformersBackend(tiny_model_dir, device="cpu")

    class CannedText(MockBackend):
        def option_probs(self, prompt, prefix, options):
            return model.option_probs(prompt, prefix, options)

    backend = CannedText(["Correct. [RESULT] 4", "**Feedback:** Fine.\n[RESULT] 2"])
    grade = Judge(backend).grade(point(), samples=2, expected_score=True)
    assert len(grade.score_probs) == 5 and sum(grade.score_probs) == pytest.approx(1.0)
    assert 1 <= grade.expected_score <= 5


def test_judge_load_mock():
    judge = Judge.load("m", backend="mock", max_retries=0, outputs=["Ok. [RESULT] 5"])
    assert judge.max_retries == 0 and judge.backend.name == "mock:m"
    assert judge.grade(point()).verdict == 5
