"""JudgeBench and RM-Bench: loaders, metrics and their entries in the benchmark table.

Loader tables read real rows vendored in ``tests/fixtures/data`` (``judgebench.jsonl``,
``rm_bench.json``; provenance in ``judge_benchmarks_PROVENANCE.md``) and hostile rows made
here; metric tables use hand-made prediction records; end-to-end runs use MockBackend judges.
Tests marked ``shared_data`` read the full files in ``../shared/data`` (skipped when absent).

    pytest tests/test_judge_benchmarks.py
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from srjudge import data
from srjudge.cli import main
from srjudge.data.judge_benchmarks import (
    RM_BENCH_STYLES,
    judgebench_category,
    load_judgebench,
    load_rm_bench,
    style_pairs,
)
from srjudge.data.rubrics import CORRECTNESS_RUBRIC, REWARDBENCH_RUBRIC
from srjudge.evaluation.benchmarks import BENCHMARKS, resolve_benchmarks
from srjudge.evaluation.evaluate import compute_metrics, evaluate
from srjudge.evaluation.metrics import both_orders_correct, style_region_accuracy
from srjudge.evaluation.results import load_predictions
from srjudge.evaluation.tasks import TASKS
from srjudge.judging.backends import MockBackend
from srjudge.judging.judge import Judge

FIXTURES = Path(__file__).parent / "fixtures" / "data"
JB_FIXTURE = FIXTURES / "judgebench.jsonl"
RMB_FIXTURE = FIXTURES / "rm_bench.json"
SRC = Path(__file__).resolve().parents[1] / "src" / "srjudge"
NEW = ("judgebench", "rm-bench")


def _jb_rows() -> list[dict]:
    return [json.loads(line) for line in JB_FIXTURE.read_text(encoding="utf-8").splitlines()]


def _rmb_rows() -> list[dict]:
    return json.loads(RMB_FIXTURE.read_text(encoding="utf-8"))


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------
# JudgeBench loader


def test_judgebench_fixture_maps_fields_labels_and_categories():
    rows = _jb_rows()
    result = load_judgebench(JB_FIXTURE)
    assert result.errors == [] and result.rows == 5
    got = [
        (ex.meta["category"], ex.meta["judgebench_source"], ex.gold_preference)
        for ex in result.examples
    ]
    assert got == [
        ("knowledge", rows[0]["source"], 2),  # B>A
        ("reasoning", "livebench-reasoning", 1),  # A>B
        ("math", "livebench-math", 2),
        ("coding", "livecodebench", 1),
        ("coding", "livecodebench", 2),
    ]
    assert rows[0]["source"].startswith("mmlu-pro-")
    for ex, row in zip(result.examples, rows, strict=True):
        assert ex.id == f"judgebench-{row['pair_id']}"
        assert [(m.role, m.content) for m in ex.context] == [("user", row["question"])]
        assert (ex.response_1, ex.response_2) == (row["response_A"], row["response_B"])
        assert ex.meta["response_model"] == row["response_model"]
        assert ex.meta["original_id"] == row["original_id"]
        assert ex.rubric == CORRECTNESS_RUBRIC and ex.source == "judgebench"


@pytest.mark.parametrize(
    "source, category",
    [
        ("mmlu-pro-law", "knowledge"),
        ("mmlu-pro-computer science", "knowledge"),
        ("livebench-reasoning", "reasoning"),
        ("livebench-math", "math"),
        ("livecodebench", "coding"),
    ],
)
def test_judgebench_category_table(source, category):
    assert judgebench_category(source) == category


BAD_JB = [
    ({"label": "A=B"}, "label", "expected 'A>B' or 'B>A', got 'A=B'"),
    ({"label": "a>b"}, "label", "expected 'A>B' or 'B>A'"),
    ({"label": None}, "label", "missing"),
    ({"label": ["A>B"]}, "label", "expected 'A>B' or 'B>A'"),
    ({"source": "livebench-physics"}, "source", "unknown JudgeBench source 'livebench-physics'"),
    ({"source": "mmlu"}, "source", "unknown JudgeBench source"),
    ({"pair_id": ""}, "pair_id", "empty"),
    ({"pair_id": 7}, "pair_id", "expected a string, got int"),
    ({"response_A": None}, "response_A", "missing"),
    ({"response_B": "  "}, "response_B", "empty"),
    ({"question": 3}, "question", "expected a string"),
]


@pytest.mark.parametrize("change, field, message", BAD_JB)
def test_judgebench_bad_rows_name_file_line_and_field(tmp_path, change, field, message):
    good = _jb_rows()[1]
    path = _write_jsonl(tmp_path / "jb.jsonl", [good, {**good, "pair_id": "x2", **change}])
    result = load_judgebench(path)
    assert [ex.id for ex in result.examples] == [f"judgebench-{good['pair_id']}"]
    (err,) = result.errors
    assert (err.file, err.line, err.field) == (str(path), 2, field)
    assert message in err.message


# ---------------------------------------------------------------------------------------
# RM-Bench loader


def test_rm_bench_fixture_maps_domains_styles_and_ids():
    rows = _rmb_rows()
    result = load_rm_bench(RMB_FIXTURE)
    assert result.errors == [] and result.rows == 4
    assert [ex.meta["domain"] for ex in result.examples] == [
        "chat",
        "code",
        "safety-refuse",
        "safety-response",
    ]
    for ex, row in zip(result.examples, rows, strict=True):
        assert ex.id == f"rm-bench-{ex.meta['domain']}-{row['id']}"
        assert ex.context[0].content == row["prompt"] and len(ex.context) == 1
        assert ex.meta["chosen"] == row["chosen"] and ex.meta["rejected"] == row["rejected"]
        assert (ex.response_1, ex.response_2) == (row["chosen"][0], row["rejected"][0])
        assert ex.gold_preference == 1 and ex.rubric == REWARDBENCH_RUBRIC
        assert ex.meta["subset"] == row["subset"] and ex.meta["rmbench_id"] == row["id"]
    assert result.examples[1].meta["language"] == rows[1]["language"]


def test_rm_bench_domain_field_wins_over_subset(tmp_path):
    row = {**_rmb_rows()[0], "domain": "math", "subset": "math-prm"}
    path = tmp_path / "total.json"
    path.write_text(json.dumps([row]), encoding="utf-8")
    (ex,) = load_rm_bench(path).examples
    assert ex.meta["domain"] == "math" and ex.id == f"rm-bench-math-{row['id']}"


BAD_RMB = [
    ({"chosen": ["a", "b"]}, "chosen", "expected a list of 3 strings"),
    ({"rejected": ["a", "", "c"]}, "rejected[1]", "expected a non-empty string"),
    ({"rejected": "abc"}, "rejected", "expected a list of 3 strings"),
    ({"subset": "mystery"}, "subset", "unknown RM-Bench subset 'mystery' and no 'domain'"),
    ({"domain": "poetry"}, "domain", "expected one of chat, math, code"),
    ({"id": True}, "id", "expected an integer or a non-empty string, got True"),
    ({"id": None}, "id", "missing"),
    ({"id": [1]}, "id", "expected an integer or a non-empty string"),
    ({"prompt": ""}, "prompt", "empty"),
]


@pytest.mark.parametrize("change, field, message", BAD_RMB)
def test_rm_bench_bad_rows_name_file_item_and_field(tmp_path, change, field, message):
    good = _rmb_rows()[0]
    path = tmp_path / "rmb.json"
    path.write_text(json.dumps([good, {**good, "id": 99999, **change}]), encoding="utf-8")
    result = load_rm_bench(path)
    assert [ex.id for ex in result.examples] == [f"rm-bench-chat-{good['id']}"]
    (err,) = result.errors
    assert (err.file, err.line, err.field) == (str(path), 2, field)
    assert message in err.message


def test_style_pairs_are_the_3x3_cells_in_row_major_order():
    ex = load_rm_bench(RMB_FIXTURE).examples[0]
    cells = style_pairs(ex)
    assert [(i, j) for i, j, _ in cells] == [(i, j) for i in range(3) for j in range(3)]
    for i, j, pair in cells:
        assert pair.response_1 == ex.meta["chosen"][i]  # chosen style i is response 1
        assert pair.response_2 == ex.meta["rejected"][j]
        assert pair.gold_preference == 1 and pair.id == f"{ex.id}#c{i}r{j}"
        assert pair.context == ex.context and pair.rubric == ex.rubric
    assert len({p.id for _, _, p in cells}) == 9
    with pytest.raises(ValueError, match="not an RM-Bench example"):
        style_pairs(load_judgebench(JB_FIXTURE).examples[0])


# ---------------------------------------------------------------------------------------
# metrics on hand-made predictions


@pytest.mark.parametrize(
    "original, swapped, gold, right",
    [
        (1, 1, 1, True),  # both orders pick response 1 (swapped mapped back)
        (2, 2, 2, True),
        (1, 2, 1, False),  # inconsistent: the verdict followed the position
        (2, 1, 1, False),
        (2, 2, 1, False),  # consistent and wrong
        (1, None, 1, False),  # an order with no parsed verdict is never a vote
        (None, 1, 1, False),
        (None, None, 1, False),
    ],
)
def test_both_orders_correct_table(original, swapped, gold, right):
    assert both_orders_correct(original, swapped, gold) is right


def _jb_record(stratum, original, swapped, gold=1):
    consistent = None if None in (original, swapped) else original == swapped
    return {
        "stratum": stratum,
        "verdict_original_order": original,
        "verdict_swapped_order": swapped,
        "gold": gold,
        "consistent": consistent,
        "judgments": 2,
        "parse_failures": (original is None) + (swapped is None),
    }


def test_judgebench_metrics_count_inconsistent_and_unparsed_pairs_wrong():
    recs = [
        _jb_record("knowledge", 1, 1),  # right
        _jb_record("knowledge", 2, 2, gold=2),  # right
        _jb_record("knowledge", 1, 2),  # inconsistent -> wrong
        _jb_record("reasoning", 1, None),  # one order unparsed -> wrong
        _jb_record("math", 2, 2),  # consistent, wrong
        _jb_record("coding", 1, 1),  # right
    ]
    m = compute_metrics(BENCHMARKS["judgebench"], recs, n_boot=200)
    assert m["accuracy"].value == pytest.approx(3 / 6)
    assert m["accuracy_knowledge"].value == pytest.approx(2 / 3)
    assert m["accuracy_reasoning"].value == 0.0 and m["accuracy_math"].value == 0.0
    assert m["accuracy_coding"].value == 1.0
    assert m["consistency"].value == pytest.approx(4 / 5)  # the unparsed pair is left out
    assert m["parse_failure_rate"].value == pytest.approx(1 / 12)
    assert m["accuracy"].lo <= m["accuracy"].value <= m["accuracy"].hi
    assert m["accuracy"].lo < m["accuracy"].hi


def _rmb_record(stratum: str, matrix: list[list[int]]) -> dict:
    cells = [
        {"chosen_style": i, "rejected_style": j, "correct": bool(matrix[i][j]), "consistent": True}
        for i in range(3)
        for j in range(3)
    ]
    return {"stratum": stratum, "cells": cells, "judgments": 18, "parse_failures": 0}


def _rm_bench_reference(matrices: list[list[list[int]]]) -> dict[str, float]:
    """RM-Bench's ``compute_accuracy`` (its README): mean matrix, then triangles/diagonal."""
    acc = np.mean(np.array(matrices, dtype=float), axis=0)
    return {
        "hard": float(np.sum(np.triu(acc, 1)) / 3),
        "normal": float(np.mean(np.diag(acc))),
        "easy": float(np.sum(np.tril(acc, -1)) / 3),
    }


# rows = chosen style, columns = rejected style (concise, detailed plain, detailed markdown)
STYLE_BIASED = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]  # right unless rejected is more formatted
MIXED = [[1, 1, 0], [0, 0, 1], [0, 1, 0]]


def test_rm_bench_regions_on_a_hand_computed_matrix():
    a, b = _rmb_record("chat", STYLE_BIASED), _rmb_record("code", MIXED)
    assert [style_region_accuracy(a, r) for r in ("easy", "normal", "hard")] == [1.0, 1.0, 0.0]
    # MIXED: lower-left (1,0),(2,0),(2,1) = 0,0,1; diagonal 1,0,0;
    # upper-right (0,1),(0,2),(1,2) = 1,0,1
    assert style_region_accuracy(b, "easy") == pytest.approx(1 / 3)
    assert style_region_accuracy(b, "normal") == pytest.approx(1 / 3)
    assert style_region_accuracy(b, "hard") == pytest.approx(2 / 3)
    m = compute_metrics(BENCHMARKS["rm-bench"], [a, b], n_boot=50)
    assert m["easy"].value == pytest.approx(2 / 3)
    assert m["normal"].value == pytest.approx(2 / 3)
    assert m["hard"].value == pytest.approx(1 / 3)
    assert m["average"].value == pytest.approx((6 / 9 + 4 / 9) / 2)
    assert (m["chat_easy"].value, m["chat_hard"].value) == (1.0, 0.0)
    assert m["code_hard"].value == pytest.approx(2 / 3)
    assert math.isnan(m["math_easy"].value) and math.isnan(m["safety-refuse_normal"].value)
    ref = _rm_bench_reference([STYLE_BIASED, MIXED])
    for region in ("easy", "normal", "hard"):
        assert m[region].value == pytest.approx(ref[region])


def test_rm_bench_metric_keys():
    keys = set(BENCHMARKS["rm-bench"].metrics)
    domains = ("chat", "math", "code", "safety-refuse", "safety-response")
    regions = ("easy", "normal", "hard")
    assert keys == {*regions, "average", "consistency"} | {
        f"{d}_{r}" for d in domains for r in regions
    }
    assert set(BENCHMARKS["judgebench"].metrics) == {
        "accuracy",
        "accuracy_knowledge",
        "accuracy_reasoning",
        "accuracy_math",
        "accuracy_coding",
        "consistency",
    }


# ---------------------------------------------------------------------------------------
# each benchmark is exactly one table entry


@pytest.mark.parametrize(
    "name, loader, task",
    [("judgebench", "judgebench", "compare"), ("rm-bench", "rm-bench", "compare_styles")],
)
def test_each_benchmark_is_one_table_entry(name, loader, task):
    bench = BENCHMARKS[name]
    assert bench.name == name and resolve_benchmarks([name]) == [name]
    assert [s.loader for s in bench.sources] == [loader] and loader in data.LOADERS
    assert bench.task == task and task in TASKS and bench.mode == "pairwise"
    assert bench.notes is not None
    users = [b for b in BENCHMARKS.values() if any(s.loader == loader for s in b.sources)]
    assert users == [bench]


def _name_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in NEW}


def test_no_code_outside_the_table_and_the_loaders_names_them():
    """Adding them took a loader (data) and a table entry: no branch on their names elsewhere."""
    named = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if _name_literals(p))
    assert named == ["data/judge_benchmarks.py", "data/sources.py", "evaluation/benchmarks.py"]


# ---------------------------------------------------------------------------------------
# evaluate end to end with mock judges


def _segments(prompt) -> tuple[str, str]:
    text = prompt[-1].content
    first = text.split("<BEGIN RESPONSE 1>", 1)[1].split("<BEGIN RESPONSE 2>", 1)[0]
    return first, text.split("<BEGIN RESPONSE 2>", 1)[1]


def _oracle_judge(right_texts: set[str]):
    """Picks the side holding a right response; response 1 when both or neither do."""

    def fn(prompt, i) -> str:
        first, second = _segments(prompt)
        pick = (
            2
            if any(t in second for t in right_texts) and not any(t in first for t in right_texts)
            else 1
        )
        return f"Checked the answer. [RESULT] {pick}"

    return fn


def _eval(fn, tmp_path, **kw):
    kw.setdefault("n_boot", 100)
    paths = {"judgebench": str(JB_FIXTURE), "rm-bench": str(RMB_FIXTURE)}
    return evaluate(Judge(MockBackend(fn)), list(NEW), out_dir=tmp_path / "ev", paths=paths, **kw)


def test_judgebench_oracle_is_right_except_on_identical_responses(tmp_path):
    rows = _jb_rows()
    right = {r["response_A"] if r["label"] == "A>B" else r["response_B"] for r in rows}
    r = _eval(_oracle_judge(right), tmp_path).benchmarks["judgebench"]
    m = r.metrics
    assert m["accuracy"].value == pytest.approx(4 / 5)  # the identical pair flips with position
    assert m["accuracy_knowledge"].value == 1.0 and m["accuracy_coding"].value == 0.5
    assert m["consistency"].value == pytest.approx(4 / 5)
    assert m["parse_failure_rate"].value == 0.0
    assert r.counts == {"items": 5, "judgments": 10, "parse_failures": 0, "resumed": 0}
    assert any("1 judged pairs have identical responses" in n for n in r.notes)
    assert any("claude-3-5-sonnet-20240620 4, gpt-4o-2024-05-13 1" in n for n in r.notes)


def _styled_row(k: int, subset: str) -> dict:
    def make(kind: str) -> list[str]:
        return [f"{kind} answer {k} in style s{s}" for s in range(3)]

    return {
        "id": k,
        "subset": subset,
        "prompt": f"Prompt {k}?",
        "chosen": make("GOOD"),
        "rejected": make("BAD"),
    }


def style_judge(prompt, i) -> str:
    """Prefers the more formatted style (s2 > s1 > s0); on equal styles, the GOOD response."""
    first, second = (int(re.search(r"style s(\d)", t).group(1)) for t in _segments(prompt))
    if first != second:
        return f"More polished. [RESULT] {1 if first > second else 2}"
    return f"Correct one. [RESULT] {1 if 'GOOD' in _segments(prompt)[0] else 2}"


def test_rm_bench_style_biased_judge_wins_easy_loses_hard(tmp_path):
    rows = [_styled_row(k, s) for k, s in enumerate(["alpacaeval", "xstest-should-respond"])]
    path = tmp_path / "rmb.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    r = evaluate(
        Judge(MockBackend(style_judge)),
        ["rm-bench"],
        out_dir=tmp_path / "ev",
        paths={"rm-bench": str(path)},
        n_boot=50,
    )
    b = r.benchmarks["rm-bench"]
    m = b.metrics
    assert (m["easy"].value, m["normal"].value, m["hard"].value) == (1.0, 1.0, 0.0)
    assert m["chat_hard"].value == 0.0 and m["safety-response_easy"].value == 1.0
    assert m["average"].value == pytest.approx(6 / 9) and m["consistency"].value == 1.0
    assert b.counts["judgments"] == 2 * 18
    rec = load_predictions(tmp_path / "ev")["rm-bench"]["rm-bench-chat-0"]
    cell = {(c["chosen_style"], c["rejected_style"]): c for c in rec["cells"]}
    assert cell[(0, 2)]["correct"] is False and cell[(2, 0)]["correct"] is True
    assert cell[(0, 2)]["verdict_original_order"] == 2 == cell[(0, 2)]["verdict_swapped_order"]
    assert any("no items for domain math, code, safety-refuse" in n for n in b.notes)


def test_position_biased_and_broken_judges_score_zero(tmp_path):
    r = _eval(lambda p, i: "Hmm. [RESULT] 1", tmp_path)
    for name, key in (("judgebench", "accuracy"), ("rm-bench", "average")):
        assert r.benchmarks[name].metrics[key].value == 0.0
        assert r.benchmarks[name].metrics["consistency"].value == 0.0
    broken = _eval(lambda p, i: "no verdict", tmp_path / "b", max_retries=0)
    for name, key in (("judgebench", "accuracy"), ("rm-bench", "hard")):
        assert broken.benchmarks[name].metrics[key].value == 0.0
        assert broken.benchmarks[name].metrics["parse_failure_rate"].value == 1.0
    assert broken.benchmarks["rm-bench"].counts["parse_failures"] == 4 * 18


def test_rm_bench_limit_counts_prompts_stratified_by_domain(tmp_path):
    r = _eval(lambda p, i: "x [RESULT] 2", tmp_path, limit=2)
    assert r.benchmarks["rm-bench"].counts["items"] == 2
    assert r.benchmarks["rm-bench"].counts["judgments"] == 2 * 18
    assert r.benchmarks["judgebench"].counts["items"] == 2


def test_cli_eval_prints_metrics_with_cis_and_parse_failure_rate(tmp_path, capsys):
    args = [
        "eval",
        "--model",
        "m",
        "--backend",
        "mock",
        "--benchmarks",
        "judgebench,rm-bench",
        "--path",
        f"judgebench={JB_FIXTURE}",
        "--path",
        f"rm-bench={RMB_FIXTURE}",
        "--out",
        str(tmp_path / "ev"),
        "--mock-output",
        "Fine. [RESULT] 2",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"judgebench\s+accuracy\s+0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]\s+5", out)
    assert re.search(r"judgebench\s+parse_failure_rate\s+0\.000", out)
    assert re.search(r"rm-bench\s+hard\s+0\.000 \[0\.000, 0\.000\]\s+4", out)
    assert re.search(r"rm-bench\s+parse_failure_rate\s+0\.000", out)
    assert "note: no items for domain math" in out


# ---------------------------------------------------------------------------------------
# the staged files


@pytest.mark.shared_data
def test_shared_files_load_whole(shared_data):
    jb = [data.load(p, "judgebench") for p in sorted((shared_data / "judgebench").glob("*.jsonl"))]
    examples = [ex for r in jb for ex in r.examples]
    assert sum(r.rows for r in jb) == 620 and not any(r.errors for r in jb)
    cats = {
        c: sum(ex.meta["category"] == c for ex in examples)
        for c in ("knowledge", "reasoning", "math", "coding")
    }
    assert cats == {"knowledge": 308, "reasoning": 149, "math": 90, "coding": 73}
    assert sum(ex.gold_preference == 1 for ex in examples) == 193 + 143
    rmb = [data.load(p, "rm-bench") for p in sorted((shared_data / "rm-bench").glob("*.json"))]
    doms = [ex.meta["domain"] for r in rmb for ex in r.examples]
    assert not any(r.errors for r in rmb) and len(doms) == 798
    assert {d: doms.count(d) for d in set(doms)} == {
        "chat": 129,
        "code": 228,
        "safety-refuse": 284,
        "safety-response": 157,
    }
    assert all(len(ex.meta["chosen"]) == len(RM_BENCH_STYLES) for r in rmb for ex in r.examples)


@pytest.mark.shared_data
def test_default_sources_evaluate(shared_data, tmp_path):
    r = evaluate(
        Judge(MockBackend(["Ok. [RESULT] 1"])),
        list(NEW),
        out_dir=tmp_path / "ev",
        limit=8,
        n_boot=50,
    )
    jb, rmb = r.benchmarks["judgebench"], r.benchmarks["rm-bench"]
    assert jb.data["rows"] == 620 and rmb.data["rows"] == 798
    assert jb.counts["items"] == 8 and rmb.counts["items"] == 8
    assert any("not in ../shared/data" in n for n in rmb.notes)
