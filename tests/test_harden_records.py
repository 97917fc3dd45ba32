"""Records accepted wrongly, unreadable inputs and unclear messages (issue 9, §2).

* rubric objects whose keys are not exactly 1..5, and ids that are null, objects, booleans,
  lists, floats or blank, are bad rows (quarantined by ``data validate``, refused by judge);
* unknown top-level fields are reported as warnings ("not kept"), a misspelt known field with
  the nearest field name;
* deeply nested JSON is one bad row, and validate still writes its good and quarantine files;
  overlap reports it and exits non-zero; a FIFO or a folder as input is refused at once;
* ``judge`` reads input through the same reader as ``validate`` (``.jsonl.gz``, JSON arrays),
  names file and line for invalid UTF-8, and no message names a field twice.

    pytest tests/test_harden_records.py
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from hostile import MOCK, RUBRIC, point, run_cli, run_cli_full, snapshot, write_rows
from srjudge.records import RecordError, example_from_dict, load_examples


def _rubric(keys: list[str]) -> dict:
    return {"criteria": "c", "score_descriptions": {k: f"desc {k}" for k in keys}}


BAD_ROWS = {
    "rubric keys 0..4": (
        point(0, rubric=_rubric(list("01234"))),
        "rubric.score_descriptions",
        "keys must be exactly 1..5, got '0', '1', '2', '3', '4'",
    ),
    "rubric keys 1..4": (
        point(0, rubric=_rubric(list("1234"))),
        "rubric.score_descriptions",
        "keys must be exactly 1..5",
    ),
    "rubric keys 1..6": (
        point(0, rubric=_rubric(list("123456"))),
        "rubric.score_descriptions",
        "keys must be exactly 1..5",
    ),
    "rubric keys with spaces": (
        point(0, rubric=_rubric(["1", "2", "3", "4", " 5"])),
        "rubric.score_descriptions",
        "keys must be exactly 1..5",
    ),
    "rubric keys 10..50": (
        point(0, rubric=_rubric(["10", "20", "30", "40", "50"])),
        "rubric.score_descriptions",
        "keys must be exactly 1..5",
    ),
    "id null": (point(0, id=None), "id", "expected a string or an integer, got null"),
    "id object": (point(0, id={"a": 1}), "id", "expected a string or an integer, got dict"),
    "id true": (point(0, id=True), "id", "expected a string or an integer, got bool"),
    "id false": (point(0, id=False), "id", "expected a string or an integer, got bool"),
    "id list": (point(0, id=["a"]), "id", "expected a string or an integer, got list"),
    "id float": (point(0, id=1.5), "id", "expected a string or an integer, got float"),
    "id empty": (point(0, id=""), "id", "blank"),
    "id blank": (point(0, id="  \t"), "id", "blank"),
}


@pytest.mark.parametrize("row,field,message", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_bad_records_are_refused_with_field_and_message(row, field, message):
    with pytest.raises(RecordError) as err:
        example_from_dict(row)
    assert err.value.field == field and message in err.value.message


def test_rubric_object_with_keys_1_to_5_in_any_order_is_ordered_by_score():
    descs = {"3": "c", "1": "a", "5": "e", "2": "b", "4": "d"}
    ex = example_from_dict(point(0, rubric={"criteria": "c", "score_descriptions": descs}))
    assert ex.rubric.score_descriptions == ("a", "b", "c", "d", "e")


def test_integer_ids_are_kept_as_their_decimal_string():
    assert example_from_dict(point(0, id=7)).id == "7"


def test_validate_quarantines_each_bad_row_and_keeps_the_good(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [point(0)] + [row for row, _, _ in BAD_ROWS.values()] + [point(1)]
    write_rows(tmp_path / "in.jsonl", rows)
    rc, err = run_cli(capsys, "data", "validate", "in.jsonl", "--good", "g.jsonl",
                      "--quarantine", "q.jsonl")  # fmt: skip
    assert rc == 1
    good = [json.loads(line)["id"] for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert good == ["p0", "p1"]
    quarantined = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    expected = [(i + 2, field, message) for i, (_, field, message) in enumerate(BAD_ROWS.values())]
    assert [(q["line"], q["field"]) for q in quarantined] == [(n, f) for n, f, _ in expected]
    for q, (_, _, message) in zip(quarantined, expected, strict=True):
        assert message in q["error"]
    for line, field, message in expected:
        assert f"in.jsonl:{line}: field '{field}': " in err and message in err


UNKNOWN = {
    "misspelt gold score": (
        {"gold_scor": 4},
        "field 'gold_scor': unknown field, not kept (did you mean 'gold_score'?)",
    ),
    "misspelt reference": (
        {"refrence_answer": "4"},
        "field 'refrence_answer': unknown field, not kept (did you mean 'reference_answer'?)",
    ),
    "unknown field": ({"notes": "x"}, "field 'notes': unknown field, not kept"),
    "misspelt rubric key": (
        {"rubric": {**RUBRIC, "critera": "x"}},
        "field 'rubric.critera': unknown field, not kept (did you mean 'rubric.criteria'?)",
    ),
    "misspelt message key": (
        {"context": [{"role": "user", "content": "Hi", "contnet": "x"}]},
        "field 'context[0].contnet': unknown field, not kept (did you mean 'context[0].content'?)",
    ),
}


@pytest.mark.parametrize("extra,warning", UNKNOWN.values(), ids=UNKNOWN.keys())
def test_unknown_and_misspelt_fields_are_warned_about(tmp_path, capsys, extra, warning):
    path = write_rows(tmp_path / "in.jsonl", [point(0), point(1, **extra)])
    rc, out, err = run_cli_full(capsys, "data", "validate", path, "--good", tmp_path / "g.jsonl")
    assert rc == 0  # the row is still good: the warning says what was not kept
    assert f"in.jsonl:2: warning: {warning}" in err, err
    assert "good: 2, bad: 0, warnings: 1" in out
    clean, warned = [json.loads(x) for x in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert set(warned) == set(clean)  # the unknown field is not written to --good


def test_judge_warns_about_a_misspelt_field(tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "in.jsonl", [point(0, gold_scor=4)])
    rc, err = run_cli(capsys, "judge", *MOCK, "--input", "in.jsonl", "--output", "o.jsonl")
    assert rc == 0
    assert "did you mean 'gold_score'?" in caplog.text + err


# ---------------------------------------------------------------------------------------
# deep nesting, FIFOs, folders

DEEP = b"[" * 10000 + b"]" * 10000


def test_validate_deeply_nested_row_is_one_bad_row_and_files_are_written(tmp_path, capsys):
    ok = json.dumps(point(0)).encode()
    mid = json.dumps(point(2, meta={"a": json.loads("[" * 100 + "]" * 100)})).encode()
    (tmp_path / "in.jsonl").write_bytes(ok + b"\n" + DEEP + b"\n" + mid + b"\n")
    outputs = ["--good", tmp_path / "g.jsonl", "--quarantine", tmp_path / "q.jsonl"]
    rc, err = run_cli(capsys, "data", "validate", tmp_path / "in.jsonl", *outputs)
    assert rc == 1
    assert "in.jsonl:2: field '<json>': nested deeper than 64 levels" in err
    assert "in.jsonl:3: field '<json>': nested deeper than 64 levels" in err
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 1
    assert [json.loads(q)["line"] for q in (tmp_path / "q.jsonl").read_text().splitlines()] == [
        2,
        3,
    ]


def test_deeply_nested_json_array_file_is_a_clear_file_error(tmp_path, capsys):
    (tmp_path / "in.json").write_bytes(b"[" + DEEP + b"]")
    rc, err = run_cli(capsys, "data", "validate", tmp_path / "in.json")
    assert rc == 2 and "in.json: field '<json>': nested deeper than 64 levels" in err, err


def test_overlap_with_a_deeply_nested_row_reports_and_exits_non_zero(tmp_path, capsys):
    write_rows(tmp_path / "train.jsonl", [point(0)])
    (tmp_path / "eval.jsonl").write_bytes(json.dumps(point(0)).encode() + b"\n" + DEEP + b"\n")
    rc, out, err = run_cli_full(
        capsys, "data", "overlap", tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    )
    assert rc == 1 and "eval.jsonl:2: field '<json>': nested deeper" in err
    assert "exact prompt matches: 1" in out  # the rows that loaded were checked


def test_overlap_exits_non_zero_when_a_file_yields_no_row(tmp_path, capsys):
    write_rows(tmp_path / "train.jsonl", [point(0)])
    write_rows(tmp_path / "eval.jsonl", [{"prompt": "not srjudge format"}])
    rc, err = run_cli(capsys, "data", "overlap", tmp_path / "train.jsonl", tmp_path / "eval.jsonl")
    assert rc == 2 and "eval.jsonl: no row loaded [srjudge]" in err, err


SPECIAL_INPUTS = {
    "validate": ["data", "validate", "{}"],
    "overlap train": ["data", "overlap", "{}", "ok.jsonl"],
    "overlap eval": ["data", "overlap", "ok.jsonl", "{}"],
    "convert": ["data", "convert", "{}", "--format", "srjudge", "--out", "c.jsonl"],
    "judge": ["judge", *MOCK, "--input", "{}", "--output", "o.jsonl"],
    "sample": ["sample", *MOCK, "--input", "{}", "--out", "s.jsonl"],
}


@pytest.mark.parametrize("argv", SPECIAL_INPUTS.values(), ids=SPECIAL_INPUTS.keys())
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_fifo_or_folder_input_is_refused_at_once(tmp_path, argv, kind):
    """In a subprocess with a timeout: reading a FIFO would block forever."""
    write_rows(tmp_path / "ok.jsonl", [point(0)])
    special = tmp_path / "special"
    os.mkfifo(special) if kind == "fifo" else special.mkdir()
    before = snapshot(tmp_path)
    cmd = [sys.executable, "-m", "srjudge.cli", *["special" if a == "{}" else a for a in argv]]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    what = "a FIFO (named pipe)" if kind == "fifo" else "a folder"
    assert proc.returncode == 2, proc.stderr
    assert f"special: is {what}, not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------
# judge reads like validate; messages


def test_judge_reads_gz_and_json_arrays_like_validate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [point(i) for i in range(3)]
    write_rows(tmp_path / "in.jsonl", rows)
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress((tmp_path / "in.jsonl").read_bytes()))
    (tmp_path / "in.json").write_text(json.dumps(rows))
    outputs = []
    for name in ("in.jsonl", "in.jsonl.gz", "in.json"):
        assert run_cli(capsys, "data", "validate", name)[0] == 0
        out = f"out-{name}.jsonl"
        rc, err = run_cli(capsys, "judge", *MOCK, "--input", name, "--output", out)
        assert rc == 0, err
        outputs.append((tmp_path / out).read_text())
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0].count("\n") == 3


BAD_JUDGE_INPUTS = {
    "invalid UTF-8": (b'{"id": "\xff"}\n', "in.jsonl:2: field '<utf-8>': invalid UTF-8"),
    "malformed JSON": (b'{"id": \n', "in.jsonl:2: field '<json>': malformed JSON"),
    "bad rubric": (
        json.dumps(point(1, rubric="x")).encode() + b"\n",
        "in.jsonl:2: field 'rubric': expected an object, got str",
    ),
    "missing response": (
        json.dumps({k: v for k, v in point(1).items() if k != "response"}).encode() + b"\n",
        "in.jsonl:2: field 'response': missing",
    ),
    "duplicate id": (
        json.dumps(point(0)).encode() + b"\n",
        "in.jsonl:2: field 'id': duplicate id 'p0' (first at line 1)",
    ),
}


@pytest.mark.parametrize("line,message", BAD_JUDGE_INPUTS.values(), ids=BAD_JUDGE_INPUTS.keys())
def test_judge_bad_input_names_file_line_and_field_once(
    tmp_path, capsys, monkeypatch, line, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_bytes(json.dumps(point(0)).encode() + b"\n" + line)
    before = snapshot(tmp_path)
    rc, err = run_cli(capsys, "judge", *MOCK, "--input", "in.jsonl", "--output", "o.jsonl")
    assert rc == 2 and message in err, err
    assert all(text.count("field '") <= 1 for text in err.splitlines()), err
    assert snapshot(tmp_path) == before  # nothing written: no output, no summary


def test_strict_loader_names_the_field_once(tmp_path):
    write_rows(tmp_path / "in.jsonl", [point(0, rubric="x")])
    with pytest.raises(RecordError) as err:
        load_examples(tmp_path / "in.jsonl")
    assert str(err.value).count("field 'rubric'") == 1
    assert str(err.value).startswith(f"{tmp_path / 'in.jsonl'}:1: field 'rubric': ")
