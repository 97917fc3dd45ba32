"""Output paths that would destroy data are refused before anything is touched (issue 9, §2).

Each row of ``CASES`` is a verb run on a folder of files set up by ``_setup``: the verb must
exit non-zero with the expected message, and every file in the folder must be byte for byte
what it was, with no file added or removed. Judge, validate, convert, sample, curate, eval,
report, sft, dpo and merge are covered: an output equal to an input (also through ``..`` or
a symlink), two outputs that are one file, an existing file or folder srjudge did not write.

    pytest tests/test_harden_paths.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hostile import MOCK, point, run_cli, snapshot, write_rows

FOREIGN_TEXT = "my notes, no trailing newline"


def _setup(tmp: Path) -> None:
    write_rows(tmp / "in.jsonl", [point(i) for i in range(3)])
    (tmp / "notes.txt").write_text(FOREIGN_TEXT)
    write_rows(tmp / "other.jsonl", [{"id": "x", "text": "someone else's data"}])
    (tmp / "sub").mkdir()
    os.symlink(tmp / "in.jsonl", tmp / "link.jsonl")
    write_rows(tmp / "j.inputs.jsonl", [point(i) for i in range(2)])
    judged = {"example_id": "p0", "kind": "pointwise", "judgments": []}
    write_rows(tmp / "judgments.jsonl", [judged])
    (tmp / "foreign_dir").mkdir()
    (tmp / "foreign_dir" / "keep.txt").write_text("keep me")
    (tmp / "model").mkdir()  # a (fake) model directory given as --model
    (tmp / "model" / "config.json").write_text("{}")
    write_rows(tmp / "pairs.jsonl", [])


SAME = "is the same file as"
CASES = {
    # judge
    "judge output is input": (
        ["judge", *MOCK, "--input", "in.jsonl", "--output", "in.jsonl"],
        "--output in.jsonl is the same file as --input in.jsonl",
    ),
    "judge output is input through ..": (
        ["judge", *MOCK, "--input", "in.jsonl", "--output", "sub/../in.jsonl"],
        SAME,
    ),
    "judge output is a symlink to the input": (
        ["judge", *MOCK, "--input", "in.jsonl", "--output", "link.jsonl"],
        SAME,
    ),
    "judge output is a text file": (
        ["judge", *MOCK, "--input", "in.jsonl", "--output", "notes.txt"],
        "--output notes.txt exists and is not a judgments file",
    ),
    "judge output is someone's JSONL": (
        ["judge", *MOCK, "--input", "in.jsonl", "--output", "other.jsonl"],
        "--output other.jsonl exists and is not a judgments file",
    ),
    "judge output is a folder": (
        ["judge", *MOCK, "--input", "in.jsonl", "--output", "sub"],
        "--output sub: is a folder",
    ),
    # data validate / convert
    "validate --good is the input": (
        ["data", "validate", "in.jsonl", "--good", "in.jsonl"],
        "--good in.jsonl is the same file as input in.jsonl",
    ),
    "validate --quarantine is the input": (
        ["data", "validate", "in.jsonl", "--quarantine", "link.jsonl"],
        "--quarantine link.jsonl is the same file as input in.jsonl",
    ),
    "validate --good and --quarantine are one file": (
        ["data", "validate", "in.jsonl", "--good", "p.jsonl", "--quarantine", "p.jsonl"],
        "--good p.jsonl and --quarantine p.jsonl are the same file",
    ),
    "validate --good is a text file": (
        ["data", "validate", "in.jsonl", "--good", "notes.txt"],
        "--good notes.txt exists and is not an srjudge examples file",
    ),
    "validate --quarantine is an examples file": (
        ["data", "validate", "in.jsonl", "--quarantine", "j.inputs.jsonl"],
        "--quarantine j.inputs.jsonl exists and is not a quarantine file",
    ),
    "convert --out is the input": (
        ["data", "convert", "in.jsonl", "--format", "srjudge", "--out", "in.jsonl"],
        "--out in.jsonl is the same file as input in.jsonl",
    ),
    "convert --out is a text file": (
        ["data", "convert", "in.jsonl", "--format", "srjudge", "--out", "notes.txt"],
        "--out notes.txt exists and is not an srjudge examples file",
    ),
    # sample / curate
    "sample --out is the input": (
        ["sample", *MOCK, "--input", "in.jsonl", "--out", "in.jsonl"],
        "--out in.jsonl is the same file as --input in.jsonl",
    ),
    "sample inputs file is the input": (
        ["sample", *MOCK, "--input", "j.inputs.jsonl", "--out", "j.jsonl"],
        "its inputs file j.inputs.jsonl is the same file as --input j.inputs.jsonl",
    ),
    "sample --out is a text file": (
        ["sample", *MOCK, "--input", "in.jsonl", "--out", "notes.txt"],
        "was not written by srjudge",
    ),
    "sample --out is someone's JSONL": (
        ["sample", *MOCK, "--input", "in.jsonl", "--out", "other.jsonl"],
        "not a JSON object with key 'example_id'",
    ),
    "curate --out is the judgments": (
        [
            "curate",
            "--inputs",
            "in.jsonl",
            "--judgments",
            "judgments.jsonl",
            "--out",
            "judgments.jsonl",
        ],  # fmt: skip
        "--out judgments.jsonl is the same file as --judgments judgments.jsonl",
    ),
    "curate --out is the inputs": (
        ["curate", "--inputs", "in.jsonl", "--judgments", "judgments.jsonl", "--out", "in.jsonl"],
        "--out in.jsonl is the same file as --inputs in.jsonl",
    ),
    "curate --out is a text file": (
        ["curate", "--inputs", "in.jsonl", "--judgments", "judgments.jsonl", "--out", "notes.txt"],
        "--out notes.txt exists and is not a preference pairs file",
    ),
    # eval / report
    "eval --out is a foreign folder": (
        [
            "eval",
            *MOCK,
            "--benchmarks",
            "in-domain",
            "--path",
            "in-domain=in.jsonl",
            "--out",
            "foreign_dir",
        ],  # fmt: skip
        "--out foreign_dir is a folder that is not an evaluation folder",
    ),
    "eval --out is a file": (
        [
            "eval",
            *MOCK,
            "--benchmarks",
            "in-domain",
            "--path",
            "in-domain=in.jsonl",
            "--out",
            "notes.txt",
        ],  # fmt: skip
        "--out notes.txt: exists and is not a folder",
    ),
    # training outputs
    "sft --out is the model": (
        ["sft", "--model", "model", "--data", "in.jsonl", "--out", "model"],
        "--out model is the same file as --model",
    ),
    "sft --out is a foreign folder": (
        ["sft", "--model", "model", "--data", "in.jsonl", "--out", "foreign_dir"],
        "--out foreign_dir is a folder that is not a model folder written by srjudge",
    ),
}


@pytest.mark.parametrize("argv,message", CASES.values(), ids=CASES.keys())
def test_destructive_output_is_refused_and_nothing_changes(
    argv, message, tmp_path, capsys, monkeypatch
):
    _setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, *argv)
    assert rc != 0, err
    assert message in err, err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_judge_summary_or_settings_file_that_is_the_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "y.summary.json", [point(0)])  # JSON lines under a .json name
    write_rows(tmp_path / "z.settings.json", [point(0)])
    before = snapshot(tmp_path)
    for input_, output, what in [
        ("y.summary.json", "y.jsonl", "its summary file y.summary.json"),
        ("z.settings.json", "z.jsonl", "its settings file z.settings.json"),
    ]:
        rc, err = run_cli(capsys, "judge", *MOCK, "--input", input_, "--output", output)
        assert rc == 2 and f"{what} is the same file as --input {input_}" in err, err
    assert snapshot(tmp_path) == before


def test_judge_foreign_summary_file_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "in.jsonl", [point(0)])
    (tmp_path / "y.summary.json").write_text('{"my": "own summary"}')
    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, "judge", *MOCK, "--input", "in.jsonl", "--output", "y.jsonl")
    assert rc == 2 and "summary file y.summary.json exists and is not a judge summary" in err
    assert snapshot(tmp_path) == before


def test_dpo_and_merge_outputs(tmp_path, capsys, monkeypatch, tiny_model_dir):
    """dpo --out equal to --model; merge --out a foreign folder (real models, nothing loaded)."""
    monkeypatch.chdir(tmp_path)
    _setup(tmp_path)
    pair = {"example_id": "p0", "prompt": [{"role": "user", "content": "Q"}], "chosen": "a",
            "rejected": "b", "chosen_verdict": 4, "rejected_verdict": 1,
            "strategy": "correct_answer", "reason": "margin"}  # fmt: skip
    write_rows(tmp_path / "pairs.jsonl", [pair])
    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, "dpo", "--model", "model", "--pairs", "pairs.jsonl", "--out", "model")
    assert rc == 2 and "--out model is the same file as --model" in err, err
    rc, err = run_cli(capsys, "merge", tiny_model_dir, tiny_model_dir, "--out", "foreign_dir")
    assert rc == 2 and "not a merged model written by srjudge" in err, err
    assert snapshot(tmp_path) == before


def test_report_refuses_a_foreign_report_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "in.jsonl", [point(i) for i in range(4)])
    argv = ["eval", *MOCK, "--benchmarks", "in-domain", "--path", "in-domain=in.jsonl"]
    assert run_cli(capsys, *argv, "--out", "ev")[0] == 0
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.md").write_text("# My own notes\n")
    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, "report", "ev", "--out", "out")
    assert rc != 0 and "report.md out/report.md exists and is not an srjudge report" in err, err
    assert snapshot(tmp_path) == before
    # srjudge's own report is rewritten on a rerun
    assert run_cli(capsys, "report", "ev", "--out", "ev")[0] == 0
    assert run_cli(capsys, "report", "ev", "--out", "ev")[0] == 0
    assert json.loads((tmp_path / "ev" / "settings.json").read_text())["model"] == "m"


@pytest.mark.parametrize("verb", ["run", "demo"])
def test_run_dir_that_is_a_foreign_folder_is_refused(verb, tmp_path, capsys, monkeypatch):
    from srjudge.commands.train import demo_config_path
    from srjudge.loop import run as loop_run

    def no_stage(cfg):
        raise AssertionError("a refused run must not plan or run a stage")

    monkeypatch.setattr(loop_run, "plan", no_stage)
    monkeypatch.chdir(tmp_path)
    _setup(tmp_path)
    before = snapshot(tmp_path)
    if verb == "run":
        argv = ["run", demo_config_path(), "run_dir=foreign_dir"]
    else:
        argv = ["demo", "--run-dir", "foreign_dir"]
    rc, err = run_cli(capsys, *argv)
    assert rc == 2 and "run_dir foreign_dir is a folder that is not a run folder" in err, err
    assert snapshot(tmp_path) == before


def test_annotate_export_and_report_outputs(tmp_path, capsys, monkeypatch):
    """export over the study itself or a data file, into a foreign folder: refused."""
    monkeypatch.chdir(tmp_path)
    _setup(tmp_path)
    for name, text in (("a", "Fine. [RESULT] 4"), ("b", "Good. [RESULT] 4")):
        argv = ["judge", "--backend", "mock", "--model", name, "--mock-output", text]
        assert run_cli(capsys, *argv, "--input", "in.jsonl", "--output", f"{name}.jsonl")[0] == 0
    create = ["annotate", "create", "--a", "a.jsonl", "--b", "b.jsonl", "--out", "s.db"]
    assert run_cli(capsys, *create)[0] == 0
    before = snapshot(tmp_path)
    export = ["annotate", "export", "s.db"]
    for argv, message in [
        ([*export, "--format", "jsonl", "--out", "s.db"], "--out s.db is the same file as study"),
        ([*export, "--format", "jsonl", "--out", "in.jsonl"], "is not a labels export"),
        ([*export, "--format", "label-studio", "--out", "foreign_dir"], "not a Label Studio"),
        (["annotate", "report", "s.db", "--out", "foreign_dir"], "not a study report folder"),
    ]:
        rc, err = run_cli(capsys, *argv)
        assert rc == 2 and message in err, (argv, err)
    assert snapshot(tmp_path) == before
    # its own exports are rewritten on a rerun
    for _ in range(2):
        assert run_cli(capsys, *export, "--format", "jsonl", "--out", "labels.jsonl")[0] == 0
        assert run_cli(capsys, *export, "--format", "label-studio", "--out", "ls")[0] == 0
