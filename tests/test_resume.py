"""ResumableJSONL: appended lines survive, a torn last line is dropped, ids are written once.

The kill -9 test of the whole ``srjudge judge`` command is in ``test_cli_judge.py``."""

from __future__ import annotations

import json

import pytest

from srjudge.resume import ResumableJSONL


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_append_and_reopen(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    with ResumableJSONL(path) as out:
        assert out.done == set() and len(out) == 0
        out.append({"id": "a", "x": 1})
        out.append({"id": 2, "x": "é"})
        assert "a" in out and 2 in out and out.done == {"a", "2"}
    assert lines(path) == [{"id": "a", "x": 1}, {"id": 2, "x": "é"}]
    with ResumableJSONL(path) as out:
        assert out.done == {"a", "2"}
        out.append({"id": "c"})
    assert [r["id"] for r in lines(path)] == ["a", 2, "c"]


def test_each_append_is_on_disk_before_close(tmp_path):
    path = tmp_path / "out.jsonl"
    out = ResumableJSONL(path)
    out.append({"id": "a"})
    assert path.read_text() == '{"id": "a"}\n'  # flushed (and fsynced) already
    out.close()


def test_torn_last_line_is_truncated_with_a_warning(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "text": "cut sh')
    with pytest.warns(UserWarning, match="torn last line"):
        out = ResumableJSONL(path)
    with out:
        assert out.done == {"a", "b"}
        assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n'
        out.append({"id": "c", "text": "whole"})
    assert [r["id"] for r in lines(path)] == ["a", "b", "c"]


def test_complete_json_without_newline_counts_as_torn(tmp_path):
    # the write reached the closing brace but not the newline: redo it rather than guess
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}')
    with pytest.warns(UserWarning), ResumableJSONL(path) as out:
        assert out.done == {"a"}


def test_torn_multibyte_character(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n' + '{"id": "b", "t": "é'.encode()[:-1])
    with pytest.warns(UserWarning), ResumableJSONL(path) as out:
        assert out.done == {"a"}


def test_duplicate_key_is_refused(tmp_path):
    with ResumableJSONL(tmp_path / "out.jsonl") as out:
        out.append({"id": "a"})
        with pytest.raises(ValueError, match="already written"):
            out.append({"id": "a"})
        with pytest.raises(KeyError):
            out.append({"name": "no id"})


def test_custom_key(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResumableJSONL(path, key="example_id") as out:
        out.append({"example_id": "e1", "judgments": []})
    with ResumableJSONL(path, key="example_id") as out:
        assert out.done == {"e1"}


def test_corrupt_complete_line_raises(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(ValueError, match=r"out.jsonl:2"):
        ResumableJSONL(path)
    path.write_text('{"id": "a"}\n{"other": 1}\n')
    with pytest.raises(ValueError, match=r":2: not a JSON object with key 'id'"):
        ResumableJSONL(path)


def test_blank_lines_are_ignored(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b"}\n')
    with ResumableJSONL(path) as out:
        assert out.done == {"a", "b"}


def test_second_writer_is_refused_while_the_first_is_open(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResumableJSONL(path):
        with pytest.raises(RuntimeError, match="another process"):
            ResumableJSONL(path)
    with ResumableJSONL(path):  # released on close
        pass
