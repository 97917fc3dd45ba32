"""``srjudge judge`` and ``srjudge models`` through the real CLI: the mock backend, a real
``kill -9`` mid-run and a rerun, and the tiny random model on pointwise and pairwise files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srjudge import cli
from srjudge.records import Message, PairwiseExample, PointwiseExample, Rubric, to_dict

RUBRIC = Rubric("Is it helpful?", ("useless", "poor", "okay", "good", "excellent"))


def points(n: int) -> list[PointwiseExample]:
    return [
        PointwiseExample(f"p{i}", [Message("user", f"What is {i}+{i}?")], str(2 * i), RUBRIC)
        for i in range(n)
    ]


def pairs(n: int) -> list[PairwiseExample]:
    return [
        PairwiseExample(
            f"q{i}", [Message("user", f"What is {i}+1?")], str(i + 1), "No idea.", RUBRIC
        )
        for i in range(n)
    ]


def write(path: Path, examples) -> Path:
    path.write_text("".join(json.dumps(to_dict(e)) + "\n" for e in examples))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def judge(*args: str) -> int:
    return cli.main(["judge", "--no-progress", *map(str, args)])


def test_mock_backend_end_to_end(tmp_path, capsys):
    src = write(tmp_path / "in.jsonl", points(3) + pairs(2))
    out = tmp_path / "out.jsonl"
    rc = judge("--backend", "mock", "--model", "m", "--mock-output", "Fine. [RESULT] 2",
               "--input", src, "--output", out, "--samples", "2", "--both-orders")  # fmt: skip
    assert rc == 0
    rows = read(out)
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "q0", "q1"]
    assert all(r["verdict"] == 2 and len(r["samples"]) == 2 for r in rows)
    assert [r.get("consistent") for r in rows[3:]] == [False, False]  # always "2": position bias
    printed = capsys.readouterr().out
    assert "judgments: 14, parse failures: 0" in printed
    assert "order-consistent: 0, inconsistent: 2" in printed
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["provenance"]["backend"] == "mock" and summary["written"] == 5


def test_mock_parse_failures_are_counted_not_scored(tmp_path, capsys):
    src = write(tmp_path / "in.jsonl", points(2))
    out = tmp_path / "out.jsonl"
    rc = judge("--backend", "mock", "--model", "m", "--mock-output", "no verdict here",
               "--input", src, "--output", out, "--max-retries", "1")  # fmt: skip
    assert rc == 0
    assert [(r["verdict"], r["raw"], r["attempts"]) for r in read(out)] == [
        (None, "no verdict here", 2)
    ] * 2
    assert (
        "parse failures: 2 (parse rate 0.0%), retries: 2, no verdict: 2" in capsys.readouterr().out
    )


def test_bad_arguments(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert (
        judge("--backend", "mock", "--model", "m", "--input", tmp_path / "x", "--output", out) == 2
    )
    assert "no such file" in capsys.readouterr().err
    src = write(tmp_path / "in.jsonl", points(1))
    assert judge("--model", "m", "--input", src, "--output", out, "--mock-output", "x") == 2
    with pytest.raises(SystemExit) as exit_:  # refused by argparse (srjudge.commands.argtypes)
        judge(
            "--backend", "mock", "--model", "m", "--input", src, "--output", out, "--samples", "0"
        )
    assert exit_.value.code == 2 and "must be >= 1, got 0" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "kind": "pointwise"}\n')
    assert judge("--backend", "mock", "--model", "m", "--input", bad, "--output", out) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_kill_9_then_rerun_writes_every_id_exactly_once(tmp_path):
    src = write(tmp_path / "in.jsonl", points(30))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "srjudge.cli", "judge", "--backend", "mock", "--model", "m",
           "--mock-output", "Fine. [RESULT] 4", "--input", str(src), "--output", str(out),
           "--batch-size", "1", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(
        [*cmd, "--mock-delay", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.read_text().count("\n") >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no output after 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = read(out)
    assert 3 <= len(before) < 30, "the run should have been killed mid-way"
    # what an interrupted write leaves behind (appended here, since SIGKILL rarely lands mid-write)
    with out.open("ab") as f:
        f.write(b'{"id": "p29", "kind": "pointw')

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "torn last line" in done.stderr
    rows = read(out)  # every line is valid JSON
    ids = [r["id"] for r in rows]
    assert sorted(ids) == sorted(f"p{i}" for i in range(30)) and len(ids) == 30
    assert rows[: len(before)] == before  # the lines written before the kill are kept as they were
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["skipped_already_done"] == len(before)
    assert summary["judged_this_run"] == 30 - len(before)
    assert summary["judgments"] == 30 and summary["parse_failures"] == 0


@pytest.mark.parametrize("kind", ["pointwise", "pairwise"])
def test_tiny_random_model(tmp_path, tiny_model_dir, kind, capsys):
    examples = points(3) if kind == "pointwise" else pairs(3)
    src = write(tmp_path / "in.jsonl", examples)
    out = tmp_path / "out.jsonl"
    rc = judge("--model", "tiny-random", "--input", src, "--output", out,
               "--max-new-tokens", "8", "--max-retries", "1")  # fmt: skip
    assert rc == 0
    rows = read(out)
    assert [r["id"] for r in rows] == [e.id for e in examples]
    for r in rows:  # a random model writes garbage: failures recorded, never a made-up score
        assert r["kind"] == kind and isinstance(r["raw"], str)
        assert (r["verdict"] is None) == (r["parse_error"] is not None)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["written"] == 3 and summary["judgments"] == 3
    assert summary["parse_failures"] == sum(r["verdict"] is None for r in rows)
    assert summary["provenance"]["model"].startswith("transformers:")
    assert "parse failures:" in capsys.readouterr().out


def test_models_command(capsys):
    assert cli.main(["models"]) == 0
    printed = capsys.readouterr().out
    assert "tiny-random" in printed and "smollm2-135m (default)" in printed
    assert cli.main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["alias"] for r in rows} >= {"tiny-random", "smollm2-135m"}
    assert all(set(r) == {"alias", "present", "path", "description", "default"} for r in rows)


@pytest.mark.slow
def test_smollm2_judges_pointwise(tmp_path):
    src = write(tmp_path / "in.jsonl", points(2))
    out = tmp_path / "out.jsonl"
    assert judge("--model", "smollm2-135m", "--input", src, "--output", out,
                 "--max-new-tokens", "128") == 0  # fmt: skip
    assert len(read(out)) == 2
