"""report.md / report.html from a (mock) run folder or evaluation folders
(``loop.rundir.run_report`` over ``srjudge.evaluation.report``)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from srjudge.evaluation.evaluate import evaluate
from srjudge.evaluation.results import find_evals
from srjudge.judging.backends import MockBackend
from srjudge.judging.judge import Judge
from srjudge.loop.rundir import display_name, run_report

IMG = '<img src="data:image/png;base64,'


def _judge(score: int) -> Judge:
    def out(prompt, i):
        if "<BEGIN RESPONSE 1>" in prompt[-1].content:
            return "Pairwise reasons. [RESULT] 1"
        return f"Pointwise reasons. [RESULT] {score}"

    return Judge(MockBackend(out, name=f"mock:{score}"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder as the loop lays it out: eval stages, a sample, a curate, a DPO log."""
    run = tmp_path_factory.mktemp("run")
    stages = run / "stages"
    for i, (label, score) in enumerate([("seed", 2), ("sft", 3), ("iter1_dpo", 4)]):
        evaluate(
            _judge(score),
            ["rewardbench", "in-domain", "rewardbench-pairwise"],
            limit=12,
            out_dir=stages / f"{10 + i:02d}_eval_{label}",
            model_label=label,
            n_boot=50,
        )
    sample = stages / "05_iter1_sample"
    sample.mkdir()
    counts = {"inputs_sampled": 10, "judgments": 100, "parse_failures": 7}
    (sample / "stage.json").write_text(
        json.dumps({"counts": counts | {"mean_rationale_chars": 321.5}})
    )
    curate = stages / "06_iter1_curate"
    curate.mkdir()
    info = {"strategy": "correct_answer", "counts": {"pairs_after_cap": 12, "by_rule": {"x": 12}}}
    (curate / "stage.json").write_text(json.dumps(info))
    dpo = stages / "07_iter1_dpo"
    dpo.mkdir()
    log = [{"step": k, "loss": 0.7 - 0.01 * k} for k in range(1, 20)] + [{"train_runtime": 3.0}]
    (dpo / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return run


def test_report_renders_tables_figures_and_iterations(run_dir, tmp_path):
    md_path, html_path = run_report(run_dir, tmp_path)
    md = md_path.read_text()
    assert "## Pointwise judging (paper Table 2)" in md
    assert "## Pairwise judging (paper Table 3)" in md
    assert "| Model | RB Chat | RB Chat-Hard | RB Safety | RB Reasoning | RB Total |" in md
    for name in ("seed model", "J_SFT", "J_1 (iter1_dpo)"):
        assert f"| {name} |" in md
    assert re.search(r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\]", md)  # values with CIs
    assert "| iter1 | 10 | 100 | 7 | 321.5 | correct_answer | 12 | x: 12 |" in md
    for fig in re.findall(r"\]\((figures/\w+\.png)\)", md):
        assert (tmp_path / fig).read_bytes().startswith(b"\x89PNG")
    html = html_path.read_text()
    assert html.count(IMG) == 3  # differences, score distributions, loss
    for chunk in html.split(IMG)[1:]:
        assert base64.b64decode(chunk.split('"')[0]).startswith(b"\x89PNG")
    assert not re.search(r"(src|href)=[\"']https?:", html)  # self-contained


def test_report_from_eval_folders_and_defaults(run_dir, tmp_path):
    folders = sorted((run_dir / "stages").glob("*_eval_*"))
    evals = find_evals([str(f) for f in folders])
    assert [e.label for e in evals] == ["seed", "sft", "iter1_dpo"]
    md, _ = run_report([str(f) for f in folders[:2]], tmp_path)
    text = md.read_text()
    assert "J_SFT" in text and "J_1" not in text and "## Iterations" not in text


def test_report_is_tolerant_of_missing_and_broken_pieces(tmp_path):
    run = tmp_path / "run"
    good = run / "stages" / "09_eval_seed"
    evaluate(_judge(3), ["rewardbench"], limit=8, out_dir=good, model_label="seed", n_boot=20)
    with open(good / "predictions.jsonl", "a") as f:
        f.write('{"torn": ')  # an interrupted write
    broken = run / "stages" / "10_eval_sft"
    broken.mkdir(parents=True)
    (broken / "metrics.json").write_text("{not json")
    (run / "stages" / "03_iter1_sample").mkdir()
    (run / "stages" / "03_iter1_sample" / "stage.json").write_text("[]")
    (run / "stages" / "04_iter1_dpo").mkdir()  # no log at all
    md, html = run_report(run, tmp_path / "out")
    text = md.read_text()
    assert "| seed model |" in text and "J_SFT" not in text
    assert "Pairwise judging" not in text  # no pairwise evaluation: table omitted
    assert "| iter1 | - | - | - |" in text
    assert IMG in html.read_text()


def test_report_with_nothing_to_report(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_report(tmp_path, tmp_path / "out")


def test_display_names():
    assert [display_name(x) for x in ("seed", "sft", "iter2_dpo", "prometheus")] == [
        "seed model",
        "J_SFT",
        "J_2 (iter2_dpo)",
        "prometheus",
    ]
