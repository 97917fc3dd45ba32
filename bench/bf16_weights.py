"""How much of a fine-tune survives bfloat16 weights: the share of the weights a trained judge
changed (against its base model) that become equal to the base weight again when both are
rounded to bfloat16, which is what loading the judge with ``dtype="bfloat16"`` (vLLM, or
transformers) does. A large share means bf16 inference runs a model closer to the base than
to the judge: ``bench/results/precision_jsft.md`` quotes it for the demo's J_SFT.

    python bench/bf16_weights.py runs/demo/stages/03_merge/model            # base: smollm2-135m
    python bench/bf16_weights.py JUDGE_DIR --base BASE_DIR

Prints one JSON line; reads ``*.safetensors`` of both folders (full weights, not adapters).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(folder: str) -> dict:
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise SystemExit(f"no *.safetensors in {folder} (a merged, full-weight model is needed)")
    return {k: v for f in files for k, v in load_file(f).items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--base", default="smollm2-135m", help="alias or folder (default smollm2-135m)")
    args = p.parse_args()
    from srjudge.models import resolve_model

    base, tuned = load(resolve_model(args.base)), load(args.model)
    changed = lost = 0
    for name, w in tuned.items():
        if name not in base:
            continue
        b, w = base[name].float(), w.float()
        moved = w != b
        changed += int(moved.sum())
        lost += int((moved & (w.bfloat16() == b.bfloat16())).sum())
    print(json.dumps({"model": args.model, "base": args.base, "weights_changed": changed,
                      "equal_to_base_in_bf16": lost,
                      "share_lost": lost / changed if changed else None}))  # fmt: skip


if __name__ == "__main__":
    main()
