"""Models, devices, servers and context lengths: a clear error at once, never a silent fallback
(issue 9, "silent fallback to the network", "--device cuda without CUDA", the OpenAI
backend's timeout and retries, "a prompt longer than the model's context").

    pytest tests/test_hardening_models.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from srjudge import cli, models
from srjudge.commands.options import add_backend_arguments, backend_options
from srjudge.judging.backends import (
    PromptTooLongError,
    SamplingParams,
    check_prompt_lengths,
    load_backend,
)
from srjudge.judging.backends.openai import OpenAIBackend, OpenAIError
from srjudge.models import ModelNotFoundError, check_device, model_problem, resolve_model
from srjudge.records import Message, PointwiseExample, Rubric, to_dict

ALIASES = "Known aliases: smollm2-135m, tiny-random (see 'srjudge models')"


def _srjudge(argv: list[str], cwd: Path | None = None) -> SimpleNamespace:
    """``srjudge ARGV`` in this process: an exception fails the test as a traceback would (the
    misspelt-alias test runs a real process and reads its stderr)."""
    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd or before)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        os.chdir(before)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture
def no_lookup(monkeypatch):
    """Fails the test if the hub is asked about a name."""

    def lookup(name):
        raise AssertionError(f"looked up {name!r} on the hub")

    monkeypatch.setattr(models, "_hub_problem", lookup)


@pytest.mark.parametrize(
    "name, why",
    [
        ("./tiny-random", "no such directory"),
        ("/no/such/model", "no such directory (/no/such/model)"),
        ("~/no-such-model", "no such directory"),
        ("runs/x/stages/03_merge/model", "no such directory"),
        ("models/", "no such directory"),
        ("C:\\models\\judge", "no such directory"),
        ("a model with spaces", "no such directory"),
    ],
)
def test_a_missing_path_fails_at_once_without_the_hub(name, why, no_lookup):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(name)
    assert why in str(info.value) and ALIASES in str(info.value)


def test_a_file_is_not_a_model(tmp_path, no_lookup):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="is a file, not a model directory"):
        resolve_model(str(weights))


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
@pytest.mark.parametrize(
    "name, hint",
    [("tiny-randm", "Did you mean 'tiny-random'?"), ("smollm2-135", "Did you mean 'smollm2-135m'?"),
     ("someone/judge-7b", "")],
)  # fmt: skip
def test_offline_a_name_not_in_the_cache_fails_at_once(
    name, hint, variable, monkeypatch, no_lookup
):
    monkeypatch.setenv(variable, "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(name)
    assert time.perf_counter() - started < 2
    message = str(info.value)
    assert "not in the Hugging Face cache (offline" in message and ALIASES in message
    assert hint in message


@pytest.mark.parametrize(
    "error, expected",
    [
        ("not found", "no such model on the Hugging Face Hub"),
        ("network", "the Hugging Face Hub could not be reached to look it up (ConnectError"),
        ("gated", None),
        (None, None),
    ],
)
def test_one_hub_lookup_decides(error, expected, monkeypatch):
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    calls = []
    response = httpx.Response(404, request=httpx.Request("GET", "https://huggingface.co"))
    raised = {
        "not found": RepositoryNotFoundError("404", response=response),
        "network": httpx.ConnectError("[Errno -2] Name or service not known"),
        "gated": GatedRepoError("401", response=response),
    }

    def model_info(self, repo_id, *, timeout=None, **kwargs):
        calls.append((repo_id, timeout))
        if error:
            raise raised[error]

    monkeypatch.setattr(HfApi, "model_info", model_info)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    models._hub_problem.cache_clear()
    name = f"someone/judge-{str(error).replace(' ', '-')}"
    if expected is None:
        assert resolve_model(name) == name
    else:
        with pytest.raises(ModelNotFoundError, match=re.escape(expected)):
            resolve_model(name)
    assert calls == [(name, models.HUB_TIMEOUT)]  # one request, with a timeout


def test_aliases_and_directories_still_resolve(tiny_model_dir, no_lookup):
    assert resolve_model("tiny-random") == tiny_model_dir
    assert resolve_model(tiny_model_dir) == tiny_model_dir
    assert model_problem("tiny-random") is None
    assert model_problem("./missing", lookup=False).startswith("model './missing': no such dir")


def test_judge_with_a_misspelt_alias_is_one_message(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(to_dict(_example("a", "fine"))) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "srjudge.cli", "judge", "--model", "tiny-randm", "--input",
         str(src), "--output", str(tmp_path / "out.jsonl")],
        capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model 'tiny-randm'" in result.stderr and "Did you mean 'tiny-random'?" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@pytest.mark.parametrize(
    "verb",
    [
        ["sample", "--model", "tiny-randm", "--input", "{src}", "--out", "{tmp}/j.jsonl"],
        ["sft", "--model", "tiny-randm", "--data", "{src}", "--out", "{tmp}/sft"],
        ["dpo", "--model", "./no-such-judge", "--pairs", "{pairs}", "--out", "{tmp}/dpo"],
        ["merge", "./no-such-a", "tiny-randm", "--out", "{tmp}/merged"],
        ["curate", "--inputs", "{src}", "--judgments", "{judged}", "--out", "{tmp}/p.jsonl",
         "--strategy", "meta_judge", "--meta-model", "tiny-randm"],
        ["eval", "--model", "tiny-randm", "--benchmarks", "rewardbench", "--out", "{tmp}/ev"],
    ],
    ids=lambda argv: argv[0],
)  # fmt: skip
def test_stage_verbs_with_a_bad_model_are_one_message(verb, tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(to_dict(_example("a", "fine"))) + "\n")
    pair = {"example_id": "a", "prompt": [{"role": "user", "content": "q"}],
            "chosen": "a [RESULT] 4", "rejected": "b [RESULT] 1", "chosen_verdict": 4,
            "rejected_verdict": 1, "strategy": "correct_answer", "reason": "r"}  # fmt: skip
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(pair) + "\n")
    judged = tmp_path / "judged.jsonl"
    judged.write_text(json.dumps({"example_id": "a", "kind": "pointwise", "judgments": []}) + "\n")
    argv = [a.format(src=src, tmp=tmp_path, pairs=pairs, judged=judged) for a in verb]
    before = {p.name for p in tmp_path.iterdir()}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _srjudge(argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and ALIASES in result.stderr
    assert re.search(
        r"^(error|srjudge eval|srjudge [a-z]+: error): model '", result.stderr, re.MULTILINE
    )
    assert {p.name for p in tmp_path.iterdir()} == before  # nothing written


# ---------------------------------------------------------------------------------------
# devices


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.mark.parametrize(
    "device, message",
    [
        pytest.param("cuda", "device 'cuda': CUDA is not available", marks=NO_CUDA),
        pytest.param("cuda:0", "device 'cuda:0': CUDA is not available", marks=NO_CUDA),
        ("cuda:99", "device 'cuda:99'"),
        ("gpu", "device 'gpu' is not a torch device"),
        ("", "device '' is not a torch device"),
    ],
)
def test_a_device_torch_cannot_use_is_refused(device, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_device(device)


def test_cpu_is_fine():
    assert check_device("cpu") == "cpu"


@NO_CUDA
def test_judge_device_cuda_without_cuda_is_one_message(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(to_dict(_example("a", "fine"))) + "\n")
    result = _srjudge(["judge", "--model", "tiny-random", "--input", str(src), "--output",
                       str(tmp_path / "out.jsonl"), "--device", "cuda"])  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: device 'cuda': CUDA is not available" in result.stderr
    assert "use --device cpu" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@NO_CUDA
def test_the_backend_itself_refuses_cuda(tiny_model_dir):
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_backend("transformers", tiny_model_dir, device="cuda")


# ---------------------------------------------------------------------------------------
# the OpenAI backend's timeout and retries


def _parse(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (("--backend", "openai", "--openai-timeout", "2.5"), {"timeout": 2.5}),
        (("--backend", "openai", "--openai-retries", "0"), {"max_retries": 0}),
        (("--backend", "openai", "--openai-timeout", "1", "--openai-retries", "3"),
         {"timeout": 1.0, "max_retries": 3}),
    ],
)  # fmt: skip
def test_timeout_and_retries_flags(argv, expected):
    assert backend_options(_parse(*argv)) == expected


@pytest.mark.parametrize(
    "argv",
    [("--openai-timeout", "0"), ("--openai-timeout", "-1"), ("--openai-timeout", "nan"),
     ("--openai-timeout", "inf"), ("--openai-retries", "-1"), ("--openai-retries", "x")],
)  # fmt: skip
def test_bad_timeout_or_retries_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        _parse("--backend", "openai", *argv)
    assert info.value.code == 2 and argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["judge", "eval", "sample", "curate", "serve"])
def test_every_model_verb_has_the_openai_flags(verb, capsys):
    with pytest.raises(SystemExit):
        cli.main([verb, "--help"])
    assert "--openai-timeout" in capsys.readouterr().out


def test_doctests():
    import doctest

    from srjudge.judging import backends

    assert doctest.testmod(backends).failed == 0
    assert doctest.testmod(models).failed == 0


def test_timeout_flag_is_for_openai_only():
    with pytest.raises(ValueError, match="--openai-timeout is for --backend openai"):
        backend_options(_parse("--openai-timeout", "3"))


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held, stop = [], threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_a_server_that_never_answers_costs_timeout_times_attempts(silent_server):
    backend = OpenAIBackend("judge", base_url=silent_server, timeout=0.3, max_retries=1,
                            backoff=0.05)  # fmt: skip
    started = time.perf_counter()
    with pytest.raises(OpenAIError, match="ReadTimeout.*gave up after 2 attempts"):
        backend.generate([[Message("user", "hi")]], SamplingParams())
    assert time.perf_counter() - started < 3


def test_cli_judge_passes_timeout_and_retries(silent_server, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(to_dict(_example("a", "fine"))) + "\n")
    started = time.perf_counter()
    result = _srjudge(["judge", "--backend", "openai", "--model", "judge", "--base-url",
                       silent_server, "--openai-timeout", "0.3", "--openai-retries", "0",
                       "--input", str(src), "--output", str(tmp_path / "out.jsonl"),
                       "--no-progress"])  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "gave up after 1 attempts" in result.stderr
    assert time.perf_counter() - started < 30  # defaults: 6 x 120 s


# ---------------------------------------------------------------------------------------
# prompts longer than the context


RUBRIC = Rubric("Is it helpful?", ("useless", "poor", "okay", "good", "excellent"))


def _example(eid: str, response: str) -> PointwiseExample:
    return PointwiseExample(eid, [Message("user", "Help?")], response, RUBRIC)


@pytest.mark.parametrize(
    "lengths, new, context, index, message",
    [
        ([10, 80], 20, 100, None, None),
        ([10, 81], 20, 100, 1, "prompt has 81 tokens; with max_new_tokens 20 that exceeds the "
         "model's context of 100 tokens: lower --max-new-tokens to at most 19"),
        ([100], 1, 100, 0, "shorten the input (the prompt alone fills the context)"),
        ([150, 10], 1, 100, 0, "prompt has 150 tokens"),
        ([10**6], 512, None, None, None),
    ],
)  # fmt: skip
def test_check_prompt_lengths(lengths, new, context, index, message):
    if message is None:
        check_prompt_lengths(lengths, new, context)
        return
    with pytest.raises(PromptTooLongError, match=re.escape(message)) as info:
        check_prompt_lengths(lengths, new, context)
    assert info.value.index == index


@pytest.fixture(scope="module")
def short_context_model(tiny_model_dir, tmp_path_factory) -> str:
    """tiny-random with a context of 400 tokens (the short example's prompt has 305)."""
    path = tmp_path_factory.mktemp("short") / "model"
    shutil.copytree(tiny_model_dir, path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 400}))
    return str(path)


def test_a_long_prompt_is_refused_naming_the_example(short_context_model):
    from srjudge.judging.sampling import sample_judgments

    backend = load_backend("transformers", short_context_model, device="cpu")
    examples = [_example("short", "Fine."), _example("long", "word " * 400)]
    params = SamplingParams(n=1, temperature=0, max_new_tokens=4)
    with pytest.raises(PromptTooLongError, match="example 'long': prompt has .* context of 400"):
        list(sample_judgments(backend, examples, params, progress=False))


def test_cli_judge_refuses_a_long_prompt_and_keeps_what_was_judged(short_context_model, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [_example("short", "Fine."), _example("long", "word " * 400)]
    src.write_text("".join(json.dumps(to_dict(r)) + "\n" for r in rows))
    before = src.read_bytes()
    result = _srjudge(["judge", "--model", short_context_model, "--input", str(src), "--output",
                       str(out), "--max-new-tokens", "4", "--batch-size", "1",
                       "--no-progress"])  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "example 'long': prompt has" in result.stderr and "context of 400" in result.stderr
    assert src.read_bytes() == before
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["short"]


def test_sampling_params_refuse_nan():
    for bad in ({"temperature": float("nan")}, {"temperature": float("inf")},
                {"top_p": float("nan")}):  # fmt: skip
        with pytest.raises(ValueError, match="temperature|top_p"):
            SamplingParams(**bad)


def test_context_length_comes_from_the_model_config(short_context_model):
    backend = load_backend("transformers", short_context_model, device="cpu")
    assert backend.context_length == 400
    assert Path(short_context_model, "config.json").is_file()
