"""Backend choices that every verb shares: the flags (``commands.options``) and each backend's
own ``inputs_per_call`` (how many inputs the sampling stage sends per call)."""

from __future__ import annotations

import argparse

import pytest

from srjudge import cli
from srjudge.commands.options import (
    DelayedBackend,
    add_backend_arguments,
    backend_options,
    load_backend_from_args,
)
from srjudge.judging.backends import MockBackend, SamplingParams
from srjudge.judging.sampling import load_judgments, sample_to_file
from srjudge.records import Message, PointwiseExample, Rubric

RUBRIC = Rubric("Is it helpful?", ("useless", "poor", "okay", "good", "excellent"))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ((), {}),
        (("--device", "cpu"), {"device": "cpu"}),
        (("--dtype", "bfloat16"), {"dtype": "bfloat16"}),
        (("--backend", "vllm", "--dtype", "float32"), {"dtype": "float32"}),
        (("--backend", "openai", "--base-url", "http://127.0.0.1:1/v1"),
         {"base_url": "http://127.0.0.1:1/v1"}),
        (("--backend", "mock", "--mock-output", "a", "--mock-output", "b"),
         {"outputs": ["a", "b"]}),
    ],
)  # fmt: skip
def test_backend_options_from_flags(argv, expected):
    assert backend_options(parse(*argv)) == expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--base-url", "http://x"), "--base-url is for --backend openai"),
        (("--backend", "openai", "--device", "cuda"), "--device is for --backend transformers"),
        (("--mock-output", "a"), "--mock-output is for --backend mock"),
        (
            ("--backend", "openai", "--dtype", "float32"),
            "--dtype is for --backend transformers, vllm, auto",
        ),
        (("--backend", "vllm", "--mock-delay", "1"), "--mock-delay is for --backend mock"),
    ],
)
def test_a_flag_of_another_backend_is_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        backend_options(parse(*argv))


def test_load_backend_from_args_builds_the_described_backend():
    backend = load_backend_from_args(parse("--backend", "mock", "--mock-output", "x"), "m")
    assert isinstance(backend, MockBackend) and backend.name == "mock:m"
    assert backend.generate([[Message("user", "q")]], SamplingParams()) == [["x"]]
    slow = load_backend_from_args(parse("--backend", "mock", "--mock-delay", "0.01"), "m")
    assert isinstance(slow, DelayedBackend) and slow.inputs_per_call == 1


@pytest.mark.parametrize("verb", ["judge", "eval", "sample", "curate"])
def test_every_model_verb_has_the_shared_flags(verb, capsys):
    with pytest.raises(SystemExit):
        cli.main([verb, "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--backend", "--device", "--base-url", "--mock-output"):
        assert flag in help_text, (verb, flag)


def test_stray_flag_is_refused_by_the_verbs_before_any_work(tmp_path, capsys):
    src = tmp_path / "x.jsonl"
    src.write_text("")
    out = tmp_path / "y.jsonl"
    argv = ["sample", "--model", "m", "--input", str(src), "--out", str(out), "--base-url", "u"]
    assert cli.main(argv) == 2
    assert "--base-url is for --backend openai" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl"]


def test_each_backend_says_how_many_inputs_it_takes_per_call():
    from srjudge.judging.backends.openai import OpenAIBackend
    from srjudge.judging.backends.transformers import TransformersBackend
    from srjudge.judging.backends.vllm import VLLMBackend

    assert MockBackend.inputs_per_call == TransformersBackend.inputs_per_call == 1
    assert VLLMBackend.inputs_per_call == OpenAIBackend.inputs_per_call == 32


def test_sampling_stage_sends_the_backends_inputs_per_call(tmp_path):
    inputs = [PointwiseExample(f"p{i}", [Message("user", f"q{i}")], "r", RUBRIC) for i in range(5)]
    backend = MockBackend(["Fine. [RESULT] 4"])
    backend.inputs_per_call = 2
    path = tmp_path / "judgments.jsonl"
    counts = sample_to_file(lambda: backend, inputs, SamplingParams(n=3), path)
    assert [len(prompts) for prompts, _ in backend.calls] == [2, 2, 1]
    assert counts["judgments"] == 15 and [i for i, _ in load_judgments(path)] == [
        f"p{i}" for i in range(5)
    ]
