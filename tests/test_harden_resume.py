"""A resumed file must match the settings and input it was started with (issue 9, §2).

``judge``, ``sample``, ``eval`` and the meta-judge step of ``curate`` write resumable files.
Rerunning one into an existing output with another model, N, temperature, template, seed,
or with changed input rows under the same ids, is refused with a message naming what
differs, and every file is left byte for byte as it was. A rerun with the same settings
continues (positive controls), and a file srjudge did not write is never truncated.

    pytest tests/test_harden_resume.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostile import MOCK, point, run_cli, snapshot, write_rows
from srjudge.errors import UserError
from srjudge.resume import ResumableJSONL

JUDGE = ["judge", *MOCK, "--input", "in.jsonl", "--output", "out.jsonl", "--no-progress"]


@pytest.fixture
def judged(tmp_path, capsys, monkeypatch) -> Path:
    """A folder with in.jsonl (3 examples) judged into out.jsonl with the mock backend."""
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "in.jsonl", [point(i) for i in range(3)])
    assert run_cli(capsys, *JUDGE)[0] == 0
    return tmp_path


JUDGE_CHANGES = {
    "model": (["--model", "other"], 'model: "mock:m" -> "mock:other"'),
    "N": (["--samples", "3"], "samples: 1 -> 3"),
    "temperature": (["--temperature", "0.7"], "params.temperature: 0.0 -> 0.7"),
    "top-p": (["--top-p", "0.5"], "params.top_p: 1.0 -> 0.5"),
    "seed": (["--seed", "5"], "params.seed: 0 -> 5"),
    "template": (["--score-only"], "templates.pointwise_score_only: (not set) ->"),
    "max tokens": (["--max-new-tokens", "7"], "params.max_new_tokens: 512 -> 7"),
    "retries": (["--max-retries", "0"], "max_retries: 2 -> 0"),
    "both orders": (["--both-orders"], "both_orders: false -> true"),
}


@pytest.mark.parametrize("extra,diff", JUDGE_CHANGES.values(), ids=JUDGE_CHANGES.keys())
def test_judge_resume_with_other_settings_is_refused(judged, capsys, extra, diff):
    _drop_last_line(judged / "out.jsonl")  # an interrupted run: one example left to judge
    before = snapshot(judged)
    argv = JUDGE + extra if extra[0] != "--model" else [*_with(JUDGE, "--model", extra[1])]
    rc, err = run_cli(capsys, *argv)
    assert rc == 2, err
    assert "out.jsonl was started with other settings" in err and diff in err, err
    assert snapshot(judged) == before


def test_judge_resume_with_changed_rows_under_the_same_ids_is_refused(judged, capsys):
    changed = [point(0), point(1, response="Five."), point(2)]
    write_rows(judged / "in.jsonl", changed)
    before = snapshot(judged)
    rc, err = run_cli(capsys, *JUDGE)
    assert rc == 2 and "1 record(s) were made from other input under the same id ('p1')" in err
    assert snapshot(judged) == before


def test_judge_resume_on_another_input_is_refused(judged, capsys):
    write_rows(judged / "in.jsonl", [point(0), point(1)])  # p2 left the input
    before = snapshot(judged)
    rc, err = run_cli(capsys, *JUDGE)
    assert rc == 2 and "holds 1 id(s) that are not in the input ('p2')" in err, err
    assert snapshot(judged) == before


def test_judge_records_without_their_settings_file_are_refused(judged, capsys):
    (judged / "out.settings.json").unlink()  # e.g. a file from an older srjudge
    before = snapshot(judged)
    rc, err = run_cli(capsys, *JUDGE)
    assert rc == 2 and "exists and is not a judgments file" in err, err
    assert snapshot(judged) == before


def test_judge_resume_with_the_same_settings_continues(judged, capsys):
    """Positive control: same settings, a torn last line, rows added to the input."""
    out = judged / "out.jsonl"
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + lines[2][:25])  # kill -9 mid-write of p2
    write_rows(judged / "in.jsonl", [point(i) for i in range(4)])  # and a new example p3
    with pytest.warns(UserWarning, match="torn last line"):
        rc, err = run_cli(capsys, *JUDGE, "--batch-size", "2")  # batch size may change
    assert rc == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
    summary = json.loads((judged / "out.summary.json").read_text())
    assert summary["written"] == 4 and summary["provenance"]["model"] == "mock:m"


def test_sample_resume_refuses_other_settings_and_inputs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "in.jsonl", [point(i) for i in range(6)])
    sample = ["sample", *MOCK, "--input", "in.jsonl", "--out", "j.jsonl", "--n", "2"]
    assert run_cli(capsys, *sample, "--count", "3")[0] == 0
    _drop_last_line(tmp_path / "j.jsonl")
    write_rows(tmp_path / "in2.jsonl", [point(i) for i in range(10, 14)])
    before = snapshot(tmp_path)
    for extra, message in [
        (["--count", "3", "--temperature", "0.5"], "params.temperature: 1.0 -> 0.5"),
        (["--count", "3", "--max-retries", "0"], "max_retries: 2 -> 0"),
        (["--count", "3", "--seed", "1"], "params.seed: 0 -> 1"),
        (["--input", "in2.jsonl"], "holds judgments of 2 input(s) not selected now"),
    ]:
        rc, err = run_cli(capsys, *sample, *extra)
        assert rc == 2 and message in err, (extra, err)
    n4 = ["sample", *MOCK, "--input", "in.jsonl", "--out", "j.jsonl", "--n", "4", "--count", "3"]
    rc, err = run_cli(capsys, *n4)
    assert rc == 2 and "params.n: 2 -> 4" in err, err
    assert snapshot(tmp_path) == before  # j.inputs.jsonl too: it is written after the checks
    assert run_cli(capsys, *sample, "--count", "3")[0] == 0  # same settings: it finishes


def test_eval_resume_refuses_other_settings_and_changed_items(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "held.jsonl", [point(i) for i in range(4)])
    ev = ["eval", *MOCK, "--benchmarks", "in-domain", "--path", "in-domain=held.jsonl"]
    assert run_cli(capsys, *ev, "--out", "ev")[0] == 0
    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, *ev, "--out", "ev", "--samples", "3")
    assert rc == 2 and "holds an evaluation with other settings (samples: 1 -> 3)" in err, err
    write_rows(tmp_path / "held.jsonl", [point(0, gold_score=1), *map(point, range(1, 4))])
    changed = snapshot(tmp_path)
    rc, err = run_cli(capsys, *ev, "--out", "ev")
    assert rc == 2 and "made from other input under the same key ('in-domain/p0')" in err, err
    assert snapshot(tmp_path) == changed
    assert {k: v for k, v in before.items() if k != "held.jsonl"} == {
        k: v for k, v in changed.items() if k != "held.jsonl"
    }


def test_eval_folder_with_predictions_but_no_settings_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "held.jsonl", [point(0)])
    (tmp_path / "ev").mkdir()
    write_rows(tmp_path / "ev" / "predictions.jsonl", [{"key": "in-domain/p0", "pred": 5}])
    before = snapshot(tmp_path)
    ev = ["eval", *MOCK, "--benchmarks", "in-domain", "--path", "in-domain=held.jsonl"]
    rc, err = run_cli(capsys, *ev, "--out", "ev")
    assert rc == 2 and "is a folder that is not an evaluation folder" in err, err
    assert snapshot(tmp_path) == before


def test_curate_meta_judge_resume_with_another_meta_model_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "in.jsonl", [point(i) for i in range(3)])
    sample = ["sample", *MOCK, "--input", "in.jsonl", "--out", "j.jsonl", "--n", "2"]
    assert run_cli(capsys, *sample)[0] == 0
    curate = ["curate", "--inputs", "in.jsonl", "--judgments", "j.jsonl", "--out", "pairs.jsonl",
              "--strategy", "meta_judge", "--backend", "mock",
              "--mock-output", "Judgment Rating: 4"]  # fmt: skip
    assert run_cli(capsys, *curate, "--meta-model", "a")[0] == 0
    _drop_last_line(tmp_path / "pairs.meta.jsonl")
    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, *curate, "--meta-model", "b")
    assert rc == 2 and 'model: "mock:a" -> "mock:b"' in err, err
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------
# ResumableJSONL itself: a file that is not ours is refused, never truncated

FOREIGN = {
    "text without a newline": b"my notes",
    "text lines": b"line one\nline two\n",
    "JSON without the key": b'{"name": "x"}\n',
    "a torn line that is not ours": b'{"id": "a"}\n{"name": "half',
    "a JSON list line": b"[1, 2]\n",
    "deeply nested line": b"[" * 10000 + b"]" * 10000 + b"\n",
}


@pytest.mark.parametrize("content", FOREIGN.values(), ids=FOREIGN.keys())
def test_resumable_file_not_ours_is_refused_untouched(tmp_path, content):
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not written by srjudge"):
        ResumableJSONL(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_settings_file_that_is_not_ours_is_refused(tmp_path):
    (tmp_path / "out.settings.json").write_text("my settings")
    with pytest.raises(UserError, match="is not an srjudge settings file"):
        ResumableJSONL(tmp_path / "out.jsonl", settings={"n": 1})
    assert not (tmp_path / "out.jsonl").exists()


def _drop_last_line(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out
