"""No verb prints a traceback for a user error; numbers are checked by argparse; Ctrl-C is one
line (issue 9, §2).

* ``VERB_CASES``: every verb ``srjudge --help`` lists (and each ``data`` action) run in a
  subprocess on bad input: a non-zero exit, the expected message, no "Traceback", and not the
  "unexpected error" line that marks a bug. A verb added to ``srjudge.cli.COMMANDS`` without a
  row here fails ``test_every_documented_verb_has_a_bad_input_case``.
* ``NUMBER_CASES``: ``--batch-size 0``, ``--temperature nan``, ... refused at parse time.
* Ctrl-C during ``judge``: "interrupted", exit 130, no traceback; a rerun finishes the file.
* An unexpected exception is one line (exit 1); ``SRJUDGE_DEBUG=1`` shows its traceback.

    pytest tests/test_harden_cli.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile import MOCK, point, run_cli, write_rows
from srjudge import cli


def _setup(tmp: Path) -> None:
    write_rows(tmp / "in.jsonl", [point(0)])
    (tmp / "bad.jsonl").write_bytes(b'{"id": "x", "kind": "pointwise"}\n{"id": \xff}\n')
    (tmp / "garbage.txt").write_text("not json\n")
    (tmp / "ev").mkdir()
    (tmp / "ev" / "predictions.jsonl").write_text("not json\n")
    (tmp / "config.yaml").write_text("run_dir: [unclosed\n")


# verb (as listed by --help, "data ACTION" for data) -> (argv, expected message on stderr)
VERB_CASES: dict[str, tuple[list[str], str]] = {
    "data validate": (["data", "validate", "bad.jsonl"], "bad.jsonl:1: field 'context': missing"),
    "data convert": (
        ["data", "convert", "missing.jsonl", "--format", "srjudge", "--out", "c.jsonl"],
        "missing.jsonl: no such file",
    ),
    "data overlap": (["data", "overlap", "in.jsonl", "bad.jsonl"], "bad.jsonl:2: field '<utf-8>'"),
    "models": (["models", "--bogus"], "unrecognized arguments: --bogus"),
    "judge": (
        ["judge", *MOCK, "--input", "bad.jsonl", "--output", "o.jsonl"],
        "bad.jsonl:2: field '<utf-8>': invalid UTF-8",
    ),
    "sft": (
        ["sft", "--model", "tiny-random", "--data", "bad.jsonl", "--out", "o"],
        "bad.jsonl: no usable row (2 rows, 2 bad)",
    ),
    "merge": (["merge", "missing-a", "missing-b", "--out", "m"], "model 'missing-a'"),
    "sample": (
        ["sample", *MOCK, "--input", "bad.jsonl", "--out", "s.jsonl"],
        "bad.jsonl: 2 of 2 rows are bad",
    ),
    "curate": (
        ["curate", "--inputs", "in.jsonl", "--judgments", "garbage.txt", "--out", "p.jsonl"],
        "garbage.txt:1: not a line of a judgments file",
    ),
    "dpo": (
        ["dpo", "--model", "tiny-random", "--pairs", "garbage.txt", "--out", "d"],
        "garbage.txt:1: field '<row>': not a preference pair",
    ),
    "run": (["run", "config.yaml"], "config.yaml: not valid YAML"),
    "demo": (["demo", "no_such_field=1"], "no_such_field"),
    "eval": (
        ["eval", *MOCK, "--benchmarks", "in-domain", "--path", "in-domain=bad.jsonl", "--out", "e"],
        "in-domain: no item could be loaded from bad.jsonl (2 rows, 2 bad;",
    ),
    "compare": (["compare", "ev", "ev"], "ev/predictions.jsonl:1: not a prediction line"),
    "report": (["report", "ev"], "nothing to report in ev"),
    "annotate": (
        ["annotate", "create", "--a", "missing.jsonl", "--b", "in.jsonl", "--out", "s.db"],
        "missing.jsonl: predictions file not found",
    ),
    "serve": (
        ["serve", *MOCK, "--api-key-file", "missing.txt"],
        "API key file missing.txt not found",
    ),
    # verbs other helpers add: used once the verb exists
    "prompt": (["prompt", "bad.jsonl", "--model", "tiny-random"], "bad.jsonl"),
}


def _verbs() -> list[str]:
    """Every documented verb, each data action on its own."""
    out = []
    for name in cli.COMMANDS:
        actions = ("validate", "convert", "overlap")
        out += [f"data {a}" for a in actions] if name == "data" else [name]
    return out


def test_every_documented_verb_has_a_bad_input_case(capsys):
    cli.main(["--help"])
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in cli.COMMANDS)  # --help lists each verb
    missing = [v for v in _verbs() if v not in VERB_CASES]
    assert not missing, f"add a bad-input case to VERB_CASES for: {missing}"


@pytest.mark.parametrize("verb", _verbs())
def test_verb_on_bad_input_prints_one_clear_error_and_no_traceback(verb, tmp_path):
    argv, message = VERB_CASES[verb]
    _setup(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "srjudge.cli", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SRJUDGE_DEBUG": ""},
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "unexpected error" not in proc.stderr, proc.stderr  # classified, not a bug
    assert message in proc.stderr, proc.stderr


NUMBER_CASES = {
    "judge --batch-size 0": (["judge", "--batch-size", "0"], "must be >= 1, got 0"),
    "judge --batch-size -1": (["judge", "--batch-size", "-1"], "must be >= 1, got -1"),
    "judge --batch-size x": (["judge", "--batch-size", "x"], "expected an integer, got 'x'"),
    "judge --temperature nan": (["judge", "--temperature", "nan"], "expected a finite number"),
    "judge --temperature inf": (["judge", "--temperature", "inf"], "expected a finite number"),
    "judge --temperature -1": (["judge", "--temperature", "-1"], "must be >= 0, got -1"),
    "judge --top-p 0": (["judge", "--top-p", "0"], "must be in (0, 1], got 0"),
    "judge --top-p 1.5": (["judge", "--top-p", "1.5"], "must be in (0, 1], got 1.5"),
    "judge --samples 0": (["judge", "--samples", "0"], "must be >= 1, got 0"),
    "judge --max-new-tokens 0": (["judge", "--max-new-tokens", "0"], "must be >= 1, got 0"),
    "judge --max-retries -1": (["judge", "--max-retries", "-1"], "must be >= 0, got -1"),
    "judge --seed -3": (["judge", "--seed", "-3"], "must be >= 0, got -3"),
    "sample --n 0": (["sample", "--n", "0"], "must be >= 1, got 0"),
    "sample --fraction 0": (["sample", "--fraction", "0"], "must be in (0, 1], got 0"),
    "sample --fraction nan": (["sample", "--fraction", "nan"], "expected a finite number"),
    "sample --count -2": (["sample", "--count", "-2"], "must be >= 1, got -2"),
    "curate --margin -1": (["curate", "--margin", "-1"], "must be >= 0, got -1"),
    "eval --limit -5": (["eval", "--limit", "-5"], "must be >= 1, got -5"),
    "eval --samples 0": (["eval", "--samples", "0"], "must be >= 1, got 0"),
    "compare --n-boot 0": (["compare", "a", "b", "--n-boot", "0"], "must be >= 1, got 0"),
    "overlap --ngram 0": (["data", "overlap", "a", "b", "--ngram", "0"], "must be >= 1, got 0"),
    "merge --weight 1.5": (
        ["merge", "a", "b", "--out", "o", "--weight", "1.5"],
        "must be in [0, 1]",
    ),
    "sft --lr nan": (["sft", "--lr", "nan"], "expected a finite number"),
    "sft --epochs 0": (["sft", "--epochs", "0"], "must be > 0, got 0"),
    "dpo --beta -0.1": (["dpo", "--beta", "-0.1"], "must be > 0, got -0.1"),
}


@pytest.mark.parametrize("argv,message", NUMBER_CASES.values(), ids=NUMBER_CASES.keys())
def test_bad_numbers_are_refused_by_argparse(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = run_cli(capsys, *argv)
    flag = [a for a in argv if a.startswith("--")][-1]
    assert rc == 2 and f"argument {flag}: {message}" in err, err
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_one_line_exit_130_and_a_rerun_finishes(tmp_path):
    n = 100  # ~20 s of mock delay: the interrupt lands mid-run even on a loaded machine
    write_rows(tmp_path / "in.jsonl", [point(i) for i in range(n)])
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "srjudge.cli", "judge", *MOCK, "--input", "in.jsonl",
           "--output", "out.jsonl", "--batch-size", "1", "--no-progress"]  # fmt: skip
    # a test run started in the background (`cmd &` without job control) ignores SIGINT, and so
    # would the child: give it the default disposition, as a terminal's foreground job has
    proc = subprocess.Popen(
        [*cmd, "--mock-delay", "0.2"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "srjudge judge: interrupted" in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0  # one line
    done = [json.loads(line)["id"] for line in out.read_text().splitlines()]  # all complete
    assert 2 <= len(done) < n
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [
        f"p{i}" for i in range(n)
    ]


def test_unexpected_exception_is_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    from srjudge.commands import models

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(models, "run", boom)
    monkeypatch.delenv("SRJUDGE_DEBUG", raising=False)
    rc, err = run_cli(capsys, "models")
    assert rc == 1
    assert err == (
        "srjudge models: unexpected error: ZeroDivisionError: a bug "
        "(set SRJUDGE_DEBUG=1 to see the traceback)\n"
    )
    monkeypatch.setenv("SRJUDGE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["models"])


def test_user_error_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    """Caught by ``cli.main``, not by the verb: a malformed pairs file for dpo."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairs.jsonl").write_text('{"example_id": "a"}\n')
    rc, err = run_cli(capsys, "dpo", "--model", "m", "--pairs", "pairs.jsonl", "--out", "o")
    assert rc == 2 and err.startswith("srjudge dpo: error: pairs.jsonl:1: field '<row>'"), err
    assert err.count("\n") == 1
