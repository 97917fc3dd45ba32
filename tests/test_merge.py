"""linear_merge: exact endpoints, the element-wise mean, refusals, plain-transformers loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from srjudge.training.merge import PROVENANCE_FILE, MergeError, linear_merge


def _load(path: str | Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _save(model, tokenizer_src: str, out: Path) -> str:
    from transformers import AutoTokenizer

    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_src).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def pair_of_models(tiny_model_dir, tmp_path_factory) -> tuple[str, str]:
    """A = tiny-random; B = A with every weight shifted by seeded noise."""
    model = _load(tiny_model_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    b = _save(model, tiny_model_dir, tmp_path_factory.mktemp("model_b"))
    return tiny_model_dir, b


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = {}
    for file in sorted(Path(path).glob("*.safetensors")):  # mergekit may shard
        weights.update(load_file(file))
    return weights


@pytest.mark.parametrize("weight, expect", [(1.0, "a"), (0.0, "b")])
def test_endpoints_reproduce_inputs_exactly(pair_of_models, tmp_path, weight, expect):
    a, b = pair_of_models
    out = linear_merge(a, b, tmp_path / "m", weight=weight)
    merged, ref = _weights(out), _weights(a if expect == "a" else b)
    assert set(merged) == set(ref) - {"lm_head.weight"}
    for k, v in merged.items():
        assert torch.equal(v, ref[k]), k


def test_half_is_elementwise_mean_and_loads(pair_of_models, tmp_path):
    a, b = pair_of_models
    out = linear_merge(a, b, tmp_path / "m", weight=0.5)
    merged, wa, wb = _weights(out), _weights(a), _weights(b)
    for k, v in merged.items():
        torch.testing.assert_close(v, (wa[k] + wb[k]) / 2, rtol=0, atol=1e-6)

    model = _load(out)  # plain transformers, no srjudge code involved
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(model.lm_head.weight, merged["model.embed_tokens.weight"])
    generated = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 6)

    prov = json.loads((out / PROVENANCE_FILE).read_text())
    assert prov["weight"] == 0.5 and prov["method"] == "linear"
    assert prov["engine"].startswith("mergekit ")
    assert len(prov["model_a"]["sha256"]["model.safetensors"]) == 64
    assert (out / "tokenizer.json").is_file() and not (out / "srjudge_model.json").exists()


def test_refuses_different_architecture(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_hidden_layers = 1
    other = _save(AutoModelForCausalLM.from_config(config), tiny_model_dir, tmp_path / "one")
    with pytest.raises(MergeError, match="different architectures: num_hidden_layers: 2 vs 1"):
        linear_merge(tiny_model_dir, other, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_refuses_different_vocabulary_size(tiny_model_dir, tmp_path):
    model = _load(tiny_model_dir)
    model.resize_token_embeddings(model.config.vocab_size + 8)
    other = _save(model, tiny_model_dir, tmp_path / "bigger")
    with pytest.raises(MergeError, match="different vocabularies: vocab_size"):
        linear_merge(tiny_model_dir, other, tmp_path / "m")


def test_refuses_different_tokenizer_vocab(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    other = tmp_path / "retok"
    _save(_load(tiny_model_dir), tiny_model_dir, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<srjudge_extra>"])
    tokenizer.save_pretrained(other)
    with pytest.raises(
        MergeError, match="different vocabularies.*only in B e.g. \\['<srjudge_extra>'"
    ):
        linear_merge(tiny_model_dir, str(other), tmp_path / "m")


def test_refuses_missing_tensor(tiny_model_dir, tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "missing"
    _save(_load(tiny_model_dir), tiny_model_dir, other)
    weights = _weights(other)
    del weights["model.norm.weight"]
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(MergeError, match="1 only in A \\(e.g. \\['model.norm.weight'\\]\\)"):
        linear_merge(tiny_model_dir, str(other), tmp_path / "m")


def test_rejects_weight_outside_unit_interval(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="weight must be in"):
        linear_merge(tiny_model_dir, tiny_model_dir, tmp_path / "m", weight=1.5)
