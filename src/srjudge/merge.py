"""Linear weight merge of two ``save_pretrained`` models of the same architecture (J_SFT).

    from srjudge.merge import linear_merge
    linear_merge("runs/x/sft_pointwise", "runs/x/sft_pairwise", "runs/x/j_sft", weight=0.5)

``out = weight * A + (1 - weight) * B`` for every floating-point tensor of the safetensors state
dicts, computed in float32 and stored in A's dtype (so ``weight=1.0`` reproduces A and ``0.0``
reproduces B bit for bit); integer buffers must be equal and are copied. A's config, generation
config and tokenizer are copied, so the result loads with plain
``AutoModelForCausalLM.from_pretrained``. ``srjudge_merge.json`` (written last) records the
inputs, the weight, the sha256 of each input's weight files and the time.

Refused with ``MergeError`` before anything is written: different architectures (config
``model_type`` or a shape key such as ``hidden_size``), different vocabularies (tokenizer vocab
or embedding shape), missing or extra tensors, or a tensor whose shape differs.

Tied embeddings: with ``tie_word_embeddings`` the output head *is* the input embedding, and
``save_pretrained`` may or may not store ``lm_head.weight``. It is dropped from both inputs
before comparing keys; the merged embedding is then the head too, as in each input. Both
inputs must agree on tying.

mergekit was not used: it resolves beside our pins (torch 2.13, transformers 5) but adds four
packages for what is here a weighted sum over two state dicts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PROVENANCE_FILE = "srjudge_merge.json"
WEIGHTS_FILE = "model.safetensors"
SHAPE_KEYS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "tie_word_embeddings",
)  # fmt: skip
"""Config keys that must match (when either config has them)."""
TIED_HEAD = "lm_head.weight"
_NOT_COPIED = (".safetensors", ".bin", ".safetensors.index.json", ".pt")
# provenance of the inputs describes them, not the merge
_OWN_FILES = {
    "srjudge_train.json", "srjudge_merge.json", "srjudge_model.json", "train_log.jsonl",
    "README.md",
}  # fmt: skip


class MergeError(ValueError):
    """The two models cannot be merged; the message says why."""


def _config(path: Path) -> dict:
    file = path / "config.json"
    if not file.is_file():
        raise MergeError(f"{path} has no config.json (not a save_pretrained directory)")
    return json.loads(file.read_text())


def _text_config(config: dict) -> dict:
    """Multimodal configs nest the language model under ``text_config``."""
    return config.get("text_config") or config


def _weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise MergeError(f"{path} has no *.safetensors weights")
    return files


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in _weight_files(path):
        state.update(load_file(file))
    return state


def _sha256(files: list[Path]) -> dict[str, str]:
    out = {}
    for file in files:
        digest = hashlib.sha256()
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[file.name] = digest.hexdigest()
    return out


def _check_configs(a: dict, b: dict) -> None:
    type_a, type_b = a.get("model_type"), b.get("model_type")
    if type_a != type_b:
        raise MergeError(f"different architectures: model_type {type_a!r} vs {type_b!r}")
    ta, tb = _text_config(a), _text_config(b)
    if ta.get("vocab_size") != tb.get("vocab_size"):
        raise MergeError(
            f"different vocabularies: vocab_size {ta.get('vocab_size')} vs {tb.get('vocab_size')}"
        )
    diffs = [
        f"{k}: {ta.get(k)!r} vs {tb.get(k)!r}"
        for k in SHAPE_KEYS
        if (k in ta or k in tb) and ta.get(k) != tb.get(k)
    ]
    if diffs:
        raise MergeError("different architectures: " + "; ".join(diffs))


def _check_vocab(a: Path, b: Path) -> None:
    from transformers import AutoTokenizer

    va = AutoTokenizer.from_pretrained(a).get_vocab()
    vb = AutoTokenizer.from_pretrained(b).get_vocab()
    if va != vb:
        only_a = sorted(set(va) - set(vb))[:5]
        only_b = sorted(set(vb) - set(va))[:5]
        moved = sum(1 for t in set(va) & set(vb) if va[t] != vb[t])
        raise MergeError(
            f"different vocabularies: {len(va)} vs {len(vb)} tokens; only in A e.g. {only_a}, "
            f"only in B e.g. {only_b}; {moved} shared tokens with different ids"
        )


def _drop_tied_head(state: dict[str, torch.Tensor], tied: bool) -> None:
    if tied:
        state.pop(TIED_HEAD, None)


def _check_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if missing or extra:
        raise MergeError(
            f"tensor keys differ: {len(missing)} only in A (e.g. {missing[:5]}), "
            f"{len(extra)} only in B (e.g. {extra[:5]})"
        )
    shapes = [
        f"{k}: {tuple(a[k].shape)} vs {tuple(b[k].shape)}" for k in a if a[k].shape != b[k].shape
    ]
    if shapes:
        kind = "vocabularies (embedding shape)" if any("embed" in s for s in shapes) else "shapes"
        raise MergeError(f"different {kind}: " + "; ".join(shapes[:5]))


def _mix(x: torch.Tensor, y: torch.Tensor, weight: float, name: str) -> torch.Tensor:
    if not x.is_floating_point():
        if not torch.equal(x, y):
            raise MergeError(f"non-float tensor {name} differs between the models")
        return x.clone()
    mixed = weight * x.to(torch.float32) + (1.0 - weight) * y.to(torch.float32)
    return mixed.to(x.dtype).contiguous()


def _copy_side_files(src: Path, out: Path) -> list[str]:
    """Config, generation config, tokenizer and chat template of ``src``."""
    copied = []
    for file in sorted(src.iterdir()):
        if not file.is_file() or file.name in _OWN_FILES or file.name.endswith(_NOT_COPIED):
            continue
        shutil.copy2(file, out / file.name)
        copied.append(file.name)
    return copied


def linear_merge(model_a: str, model_b: str, out_dir: str | Path, *, weight: float = 0.5) -> Path:
    """Write ``weight * A + (1 - weight) * B`` into ``out_dir`` (A's config and tokenizer).

    ``model_a``/``model_b``: model directories or aliases. Raises ``MergeError`` when the
    models differ in architecture, vocabulary or tensors, ``ValueError`` for a weight outside
    [0, 1]. Returns ``out_dir``.
    """
    from srjudge.models import resolve_model

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    started = time.time()
    a, b = Path(resolve_model(model_a)), Path(resolve_model(model_b))
    for p in (a, b):
        if not p.is_dir():
            raise MergeError(f"{p} is not a model directory")
        if Path(out_dir).resolve() == p.resolve():
            raise MergeError(f"out_dir {out_dir} is an input; write the merge elsewhere")
    config_a, config_b = _config(a), _config(b)
    _check_configs(config_a, config_b)
    _check_vocab(a, b)
    tied = bool(_text_config(config_a).get("tie_word_embeddings", False))
    state_a, state_b = _state_dict(a), _state_dict(b)
    _drop_tied_head(state_a, tied)
    _drop_tied_head(state_b, tied)
    _check_tensors(state_a, state_b)

    merged = {k: _mix(state_a[k], state_b[k], weight, k) for k in state_a}
    del state_a, state_b
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.safetensors*"):
        stale.unlink()
    save_file(merged, out / WEIGHTS_FILE, metadata={"format": "pt"})
    copied = _copy_side_files(a, out)
    provenance = {
        "method": "linear",
        "formula": "weight * A + (1 - weight) * B (float32, stored in A's dtype)",
        "weight": weight,
        "model_a": {"input": model_a, "path": str(a), "sha256": _sha256(_weight_files(a))},
        "model_b": {"input": model_b, "path": str(b), "sha256": _sha256(_weight_files(b))},
        "tensors": len(merged),
        "tied_embeddings": tied,
        "copied_from_a": copied,
        "seconds": round(time.time() - started, 2),
        "merged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return out
