"""Linear weight merge of two ``save_pretrained`` models of the same architecture (J_SFT).

    from srjudge.training.merge import linear_merge
    linear_merge("runs/x/sft_pointwise", "runs/x/sft_pairwise", "runs/x/j_sft", weight=0.5)

``out = weight * A + (1 - weight) * B`` for every tensor, computed by mergekit's ``linear``
method (``normalize: false``) and stored in A's dtype (``weight=1.0`` reproduces A and ``0.0``
reproduces B bit for bit: tested). A's config, generation config, tokenizer and chat template
are copied, so the result loads with plain ``AutoModelForCausalLM.from_pretrained``; mergekit
adds its ``mergekit_config.yml`` and a model card. ``srjudge_merge.json`` (written last)
records the inputs, the weight, the sha256 of each input's weight files, the mergekit version
and the time.

Refused with ``MergeError`` before anything is written (mergekit itself would merge some of
these, e.g. embeddings of different sizes, which is never what a judge merge wants): different
architectures (config ``model_type`` or a shape key such as ``hidden_size``), different
vocabularies (tokenizer vocab or embedding shape), missing or extra tensors, or a tensor whose
shape differs. The checks read the safetensors headers only.

Tied embeddings: with ``tie_word_embeddings`` the output head *is* the input embedding, and
``save_pretrained`` may or may not store ``lm_head.weight``. It is dropped from both inputs
before comparing keys; the merged embedding is then the head too, as in each input. Both
inputs must agree on tying.

mergekit (0.1.5) installs beside our pins (torch 2.13, transformers 5), so it does the
arithmetic, as the issue asks; a merge with it of two random tiny Llamas matched a plain
float32 ``w * A + (1 - w) * B`` to 2.4e-7.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import time
from pathlib import Path

from safetensors import safe_open

from srjudge.paths import refuse_foreign_dir

PROVENANCE_FILE = "srjudge_merge.json"
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


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from the safetensors headers (no weights are loaded)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for file in _weight_files(path):
        with safe_open(file, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


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


def _drop_tied_head(shapes: dict[str, tuple[int, ...]], tied: bool) -> None:
    if tied:
        shapes.pop(TIED_HEAD, None)


def _check_tensors(a: dict[str, tuple[int, ...]], b: dict[str, tuple[int, ...]]) -> None:
    missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if missing or extra:
        raise MergeError(
            f"tensor keys differ: {len(missing)} only in A (e.g. {missing[:5]}), "
            f"{len(extra)} only in B (e.g. {extra[:5]})"
        )
    shapes = [f"{k}: {a[k]} vs {b[k]}" for k in a if a[k] != b[k]]
    if shapes:
        kind = "vocabularies (embedding shape)" if any("embed" in s for s in shapes) else "shapes"
        raise MergeError(f"different {kind}: " + "; ".join(shapes[:5]))


def _dtype(config: dict) -> str:
    """A's stored dtype as mergekit names it (transformers 5 writes ``dtype``)."""
    text = _text_config(config)
    return str(text.get("dtype") or text.get("torch_dtype") or config.get("dtype") or "float32")


def _mergekit_linear(a: Path, b: Path, out: Path, weight: float, dtype: str) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    config = MergeConfiguration.model_validate(
        {
            "merge_method": "linear",
            "dtype": dtype,
            # weights are used as given: they already sum to 1, and 1.0 / 0.0 must be exact
            "parameters": {"normalize": False},
            "models": [
                {"model": str(a), "parameters": {"weight": weight}},
                {"model": str(b), "parameters": {"weight": 1.0 - weight}},
            ],
        }
    )
    run_merge(config, str(out), options=MergeOptions(copy_tokenizer=True, quiet=True))


def _copy_side_files(src: Path, out: Path) -> list[str]:
    """Config, generation config, tokenizer and chat template of ``src``."""
    copied = []
    for file in sorted(src.iterdir()):
        if not file.is_file() or file.name in _OWN_FILES or file.name.endswith(_NOT_COPIED):
            continue
        shutil.copy2(file, out / file.name)
        copied.append(file.name)
    return copied


def _is_merge_out(out: Path) -> bool:
    """A folder srjudge wrote a model to (a merge, training, or a converted model)."""
    names = (PROVENANCE_FILE, "srjudge_train.json", "srjudge_model.json")
    return any((out / name).is_file() for name in names)


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
    shapes_a, shapes_b = _tensor_shapes(a), _tensor_shapes(b)
    _drop_tied_head(shapes_a, tied)
    _drop_tied_head(shapes_b, tied)
    _check_tensors(shapes_a, shapes_b)

    out = Path(out_dir)
    refuse_foreign_dir(out, "--out", "a merged model written by srjudge", _is_merge_out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.safetensors*"):
        stale.unlink()
    _mergekit_linear(a, b, out, weight, _dtype(config_a))
    copied = _copy_side_files(a, out)  # A's own config and tokenizer files, over mergekit's
    provenance = {
        "method": "linear",
        "engine": f"mergekit {importlib.metadata.version('mergekit')} (normalize: false)",
        "formula": "weight * A + (1 - weight) * B (stored in A's dtype)",
        "weight": weight,
        "model_a": {"input": model_a, "path": str(a), "sha256": _sha256(_weight_files(a))},
        "model_b": {"input": model_b, "path": str(b), "sha256": _sha256(_weight_files(b))},
        "tensors": len(shapes_a),
        "tied_embeddings": tied,
        "copied_from_a": copied,
        "seconds": round(time.time() - started, 2),
        "merged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return out
