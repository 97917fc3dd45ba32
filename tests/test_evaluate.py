"""Benchmarks, metrics and ``evaluate`` with MockBackend judges (srjudge.evaluation)."""

from __future__ import annotations

import json
import math
import re

import pytest

from srjudge.cli import main
from srjudge.data.rubrics import REWARDBENCH_RUBRIC
from srjudge.data.sources import load_rewardbench
from srjudge.evaluation.benchmarks import BENCHMARKS, resolve_benchmarks, stratified_sample
from srjudge.evaluation.compare import compare_evals
from srjudge.evaluation.evaluate import compute_metrics, evaluate
from srjudge.evaluation.metrics import REWARDBENCH_EXAMPLE_COUNTS, rewardbench_section_scores
from srjudge.evaluation.results import load_eval, load_predictions
from srjudge.judging.backends import MockBackend
from srjudge.judging.judge import Judge
from srjudge.records import Message, PointwiseExample

SUBSETS = {
    "Chat": ["alpacaeval-easy", "mt-bench-easy"],
    "Chat Hard": ["llmbar-natural"],
    "Safety": ["xstest-should-refuse", "donotanswer"],
    "Reasoning": ["math-prm", "hep-python"],
}


# ---------------------------------------------------------------------------------------
# fixtures: tiny benchmark files and mock judges


@pytest.fixture
def rb_file(tmp_path):
    """RewardBench jsonl: 4 items in each of 7 subsets; chosen says GOOD, rejected says BAD."""
    rows = []
    for section, subsets in SUBSETS.items():
        for subset in subsets:
            for i in range(4):
                rows.append(
                    {
                        "id": len(rows),
                        "section": section,
                        "subset": subset,
                        "prompt": f"Question {len(rows)} about {subset}: please answer it well.",
                        "chosen": f"GOOD answer {i}",
                        "rejected": f"BAD answer {i}",
                    }
                )
    path = tmp_path / "rb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _biggen_row(i: int, human, capability: str) -> dict:
    descs = {f"score{k}_description": f"level {k}" for k in range(1, 6)}
    return {
        "id": f"{capability}_task{i % 2}_{i}",
        "capability": capability,
        "task": f"task{i % 2}",
        "model_name": "m",
        "input": f"Input number {i}",
        "system_prompt": "Be nice.",
        "response": f"SCORE{(i % 5) + 1} response",
        "reference_answer": "ref",
        "score_rubric": {"criteria": "Is it good?", **descs},
        "human_score": human,
        "gpt4_score": float((i % 5) + 1),
    }


@pytest.fixture
def biggen_file(tmp_path):
    rows = [_biggen_row(i, (i % 5) + 1, "planning") for i in range(10)]
    rows += [_biggen_row(i, (i % 5) + 1, "safety") for i in range(10, 20)]
    rows.append(_biggen_row(20, -1, "safety"))  # no human score
    path = tmp_path / "biggen.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _last_user(prompt) -> str:
    return prompt[-1].content


def good_judge(prompt, i) -> str:
    """Scores GOOD 5 and BAD 1; in pairwise picks the side showing GOOD; BiGGen: SCOREk -> k."""
    text = _last_user(prompt)
    if "<BEGIN RESPONSE 1>" in text:
        first = text.split("<BEGIN RESPONSE 2>")[0]
        return "GOOD is better. [RESULT] " + ("1" if "GOOD" in first else "2")
    if m := re.search(r"SCORE(\d)", text):
        return f"As the rubric says. [RESULT] {m.group(1)}"
    return "Reasons. [RESULT] " + ("5" if "GOOD answer" in text else "1")


def first_judge(prompt, i) -> str:
    """Position-biased and score-flat: always 1 (pairwise) or 3 (pointwise)."""
    return "Hmm. [RESULT] " + ("1" if "<BEGIN RESPONSE 1>" in _last_user(prompt) else "3")


def broken_judge(prompt, i) -> str:
    return "I will not give a score."


def _eval(fn, tmp_path, name="ev", benchmarks=("rewardbench",), **kw):
    kw.setdefault("n_boot", 100)
    return evaluate(Judge(MockBackend(fn)), list(benchmarks), out_dir=tmp_path / name, **kw)


# ---------------------------------------------------------------------------------------
# RewardBench weighting


def test_section_scores_match_hand_computed_official_weighting():
    acc = {
        "alpacaeval-easy": 1.0,  # weight 100
        "mt-bench-easy": 0.5,  # weight 28
        "llmbar-natural": 0.25,
        "refusals-dangerous": 1.0,  # weight 100
        "xstest-should-refuse": 0.0,  # weight 250 (official constants)
        "xstest-should-respond": 1.0,  # weight 154
        "math-prm": 0.8,  # weight 984 = 6 x 164
        "hep-cpp": 0.5,  # weight 164
        "hep-go": 0.2,  # weight 164
    }
    s = rewardbench_section_scores(acc)
    assert s["Chat"] == pytest.approx((100 * 1.0 + 28 * 0.5) / 128)  # 0.890625
    assert s["Chat Hard"] == pytest.approx(0.25)
    assert s["Safety"] == pytest.approx((100 + 154) / 504)
    assert s["Reasoning"] == pytest.approx((984 * 0.8 + 164 * 0.5 + 164 * 0.2) / 1312)  # 0.6875


def test_reasoning_weighs_math_like_the_mean_of_the_code_subsets():
    heps = {
        f"hep-{x}": v
        for x, v in zip(
            ["cpp", "go", "java", "js", "python", "rust"],
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            strict=True,
        )
    }
    s = rewardbench_section_scores({"math-prm": 0.9, **heps})
    assert s["Reasoning"] == pytest.approx((0.9 + 0.35) / 2)
    assert REWARDBENCH_EXAMPLE_COUNTS["math-prm"] == 6 * REWARDBENCH_EXAMPLE_COUNTS["hep-cpp"]


def test_total_is_the_mean_of_sections_via_records():
    # Chat: one subset at 1.0; Reasoning: math-prm 0 (weight 984), hep-go 1 (weight 164)
    recs = [{"stratum": "alpacaeval-easy", "score": 1.0, "judgments": 2, "parse_failures": 0}]
    recs += [{"stratum": "math-prm", "score": 0.0, "judgments": 2, "parse_failures": 0}] * 3
    recs += [{"stratum": "hep-go", "score": 1.0, "judgments": 2, "parse_failures": 1}]
    m = compute_metrics(BENCHMARKS["rewardbench"], recs, n_boot=50)
    assert m["chat"].value == 1.0 and m["reasoning"].value == pytest.approx(164 / 1148)
    assert m["total"].value == pytest.approx((1 + 164 / 1148) / 2)
    assert math.isnan(m["safety"].value)
    assert m["parse_failure_rate"].value == pytest.approx(1 / 10)
    assert "total_expected" not in m  # no expected scores in these records


# ---------------------------------------------------------------------------------------
# sampling and names


def test_stratified_sample_keeps_every_subset_and_is_seeded(rb_file):
    examples = load_rewardbench(rb_file).examples
    stratum = BENCHMARKS["rewardbench"].stratum
    sample = stratified_sample(examples, 8, stratum, seed=1)
    assert len(sample) == 8
    assert {stratum(e) for e in sample} == {s for v in SUBSETS.values() for s in v}
    assert sample == stratified_sample(examples, 8, stratum, seed=1)
    assert [e.id for e in stratified_sample(examples, 8, stratum, seed=2)] != [e.id for e in sample]
    assert stratified_sample(examples, 1000, stratum, 0) == examples


def test_resolve_benchmarks_mode_and_unknown():
    assert resolve_benchmarks(["rewardbench", "biggen"], "pairwise") == [
        "rewardbench-pairwise",
        "biggen",
    ]
    with pytest.raises(ValueError, match="unknown benchmark"):
        resolve_benchmarks(["nope"])


# ---------------------------------------------------------------------------------------
# evaluate end to end


def test_rewardbench_pointwise_good_judge_scores_one(rb_file, tmp_path):
    r = _eval(good_judge, tmp_path, paths={"rewardbench": str(rb_file)})
    m = r.benchmarks["rewardbench"].metrics
    assert m["total"].value == 1.0 and m["parse_failure_rate"].value == 0.0
    rec = next(iter(load_predictions(tmp_path / "ev")["rewardbench"].values()))
    assert rec["chosen"]["verdict"] == 5 and rec["rejected"]["verdict"] == 1
    assert rec["chosen"]["rationale"] == "Reasons."


def test_rewardbench_pointwise_ties_count_half_and_failures_zero(rb_file, tmp_path):
    flat = _eval(first_judge, tmp_path, "flat", paths={"rewardbench": str(rb_file)})
    assert flat.benchmarks["rewardbench"].metrics["total"].value == 0.5
    broken = _eval(broken_judge, tmp_path, "broken", paths={"rewardbench": str(rb_file)})
    m = broken.benchmarks["rewardbench"].metrics
    assert m["total"].value == 0.0 and m["parse_failure_rate"].value == 1.0


def test_expected_score_breaks_ties(rb_file, tmp_path):
    class ScoringMock(MockBackend):
        def option_probs(self, prompt, prefix, options):
            good = "GOOD answer" in prompt[-1].content
            return [0.0, 0.0, 0.2, 0.3, 0.5] if good else [0.5, 0.3, 0.2, 0.0, 0.0]

    judge = Judge(ScoringMock(first_judge))  # every verdict 3: all ties
    r = evaluate(
        judge,
        ["rewardbench"],
        out_dir=tmp_path / "ev",
        n_boot=50,
        paths={"rewardbench": str(rb_file)},
    )
    m = r.benchmarks["rewardbench"].metrics
    assert m["total"].value == 0.5
    assert m["total_expected"].value == 1.0


def test_rewardbench_pairwise_both_orders(rb_file, tmp_path):
    good = _eval(good_judge, tmp_path, "good", mode="pairwise", paths={"rewardbench": str(rb_file)})
    m = good.benchmarks["rewardbench-pairwise"].metrics
    assert m["total"].value == 1.0 and m["consistency"].value == 1.0
    biased = _eval(first_judge, tmp_path, "b", mode="pairwise", paths={"rewardbench": str(rb_file)})
    m = biased.benchmarks["rewardbench-pairwise"].metrics
    assert m["total"].value == 0.5 and m["consistency"].value == 0.0


def test_biggen_correlations_missing_human_and_coverage_note(biggen_file, tmp_path):
    r = _eval(good_judge, tmp_path, benchmarks=["biggen"], paths={"biggen": str(biggen_file)})
    b = r.benchmarks["biggen"]
    assert b.metrics["pearson_human"].value == pytest.approx(1.0)
    assert b.metrics["pearson_gpt4"].value == pytest.approx(1.0)
    assert {"spearman_human", "kendall_gpt4"} <= set(b.metrics)
    assert b.counts["items"] == 21
    assert any("1 items without a human score" in n for n in b.notes)
    assert any("2 of 77 tasks (2 of 9 capabilities" in n for n in b.notes)
    assert any("theory_of_mind" in n for n in b.notes)


def test_in_domain_default_is_a_question_level_heldout_split(tmp_path):
    r = _eval(good_judge, tmp_path, benchmarks=["in-domain"], limit=12)
    b = r.benchmarks["in-domain"]
    assert b.counts["items"] == 12 and "heldout" in b.data
    assert "pearson_gpt4" in b.metrics


def test_autoj_ties_are_left_out_of_accuracy(tmp_path):
    rows = [
        {
            "scenario": "s",
            "label": lab,
            "prompt": f"Prompt {i} for the test set here",
            "response 1": "GOOD one" if lab != 1 else "BAD one",
            "response 2": "BAD two" if lab != 1 else "GOOD two",
        }
        for i, lab in enumerate([0, 1, 2, 0, 1, 2])
    ]
    path = tmp_path / "autoj.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = _eval(good_judge, tmp_path, benchmarks=["autoj"], paths={"autoj": str(path)})
    b = r.benchmarks["autoj"]
    assert b.metrics["accuracy"].value == 1.0
    assert any(n.startswith("2 tie items") for n in b.notes)


def test_outputs_resume_and_settings_guard(rb_file, tmp_path):
    backend = MockBackend(good_judge)
    out = tmp_path / "ev"
    first = evaluate(
        Judge(backend), ["rewardbench"], out_dir=out, n_boot=50, paths={"rewardbench": str(rb_file)}
    )
    calls = len(backend.calls)
    again = evaluate(
        Judge(backend), ["rewardbench"], out_dir=out, n_boot=50, paths={"rewardbench": str(rb_file)}
    )
    assert len(backend.calls) == calls  # nothing judged twice
    assert again.benchmarks["rewardbench"].counts["resumed"] == 28
    assert again.summary() == first.summary()
    assert load_eval(out).summary() == first.summary()
    with pytest.raises(ValueError, match="other settings"):
        evaluate(
            Judge(backend),
            ["rewardbench"],
            out_dir=out,
            seed=7,
            paths={"rewardbench": str(rb_file)},
        )


def test_interrupted_eval_continues(rb_file, tmp_path):
    class Dies(MockBackend):
        def generate(self, prompts, params):
            if len(self.calls) >= 5:  # the first 16 items (4 calls), then "killed"
                raise KeyboardInterrupt
            return super().generate(prompts, params)

    out = tmp_path / "ev"
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            Judge(Dies(good_judge)),
            ["rewardbench"],
            out_dir=out,
            n_boot=50,
            paths={"rewardbench": str(rb_file)},
        )
    partial = len(load_predictions(out).get("rewardbench", {}))
    assert 0 < partial < 28 and not (out / "metrics.json").exists()
    r = evaluate(
        Judge(MockBackend(good_judge)),
        ["rewardbench"],
        out_dir=out,
        n_boot=50,
        paths={"rewardbench": str(rb_file)},
    )
    assert r.benchmarks["rewardbench"].counts["resumed"] == partial
    assert r.benchmarks["rewardbench"].counts["items"] == 28


def test_overlap_is_refused_unless_allowed(rb_file, tmp_path):
    ex = load_rewardbench(rb_file).examples[0]
    train = [
        PointwiseExample("t1", [Message("user", ex.context[0].content)], "x", REWARDBENCH_RUBRIC)
    ]
    r = _eval(
        good_judge, tmp_path, "refused", paths={"rewardbench": str(rb_file)}, train_examples=train
    )
    b = r.benchmarks["rewardbench"]
    assert b.overlap["ids"] == [ex.id] and b.overlap["action"] == "excluded"
    assert (
        b.counts["items"] == 27
        and ex.id not in load_predictions(tmp_path / "refused")["rewardbench"]
    )
    kept = _eval(
        good_judge,
        tmp_path,
        "kept",
        paths={"rewardbench": str(rb_file)},
        train_examples=train,
        allow_overlap=True,
    )
    b = kept.benchmarks["rewardbench"]
    assert b.counts["items"] == 28 and b.notes[0].startswith("WARNING: 1 items overlap")
    assert load_predictions(tmp_path / "kept")["rewardbench"][ex.id]["overlap"] is True


def test_compare_evals_paired_deltas(rb_file, tmp_path):
    paths = {"rewardbench": str(rb_file)}
    _eval(good_judge, tmp_path, "good", paths=paths)
    _eval(first_judge, tmp_path, "flat", paths=paths)
    deltas = {d.metric: d for d in compare_evals(tmp_path / "flat", tmp_path / "good")}
    total = deltas["total"]
    assert total.delta == pytest.approx(0.5) and total.p_value < 0.05 and total.lo > 0
    same = {d.metric: d for d in compare_evals(tmp_path / "good", tmp_path / "good")}
    assert same["total"].delta == 0 and same["total"].p_value == 1.0


def test_cli_eval_compare_report(rb_file, tmp_path, capsys):
    common = [
        "--backend",
        "mock",
        "--benchmarks",
        "rewardbench",
        "--path",
        f"rewardbench={rb_file}",
        "--limit",
        "8",
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        main(["eval", "--model", "m", *common, "--mock-output", "ok [RESULT] 3", "--out", str(a)])
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(r"rewardbench\s+total\s+0\.500", out)
    assert (
        main(["eval", "--model", "m", *common, "--out", str(b), "--mock-output", "no score here"])
        == 0
    )
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "B - A" in out and re.search(r"total\s+0\.500\s+0\.000", out)
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.html").is_file()
    assert main(["eval", "--model", "m", "--backend", "mock", "--benchmarks", "nope"]) == 2


@pytest.mark.shared_data
def test_default_sources_load(shared_data, tmp_path):
    r = _eval(good_judge, tmp_path, benchmarks=["biggen", "safe-rlhf"], limit=9)
    assert r.benchmarks["biggen"].data["rows"] == 2380
    assert any("60 of 77 tasks (7 of 9" in n for n in r.benchmarks["biggen"].notes)
    assert r.benchmarks["safe-rlhf"].counts["items"] == 9
