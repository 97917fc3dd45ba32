"""Compare the trained models of two run folders: weights and logged training losses per stage.

Used for issue 14's check that a run with 2 training processes gives the 1-process J_SFT:

    python scripts/compare_runs.py runs/demo_1p runs/demo_2p [--stages 01_sft_pointwise,...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

STAGES = "01_sft_pointwise,02_sft_pairwise,03_merge"


def weights(run: Path, stage: str) -> dict:
    files = sorted((run / "stages" / stage / "model").glob("*.safetensors"))
    if not files:
        raise SystemExit(f"{run}/stages/{stage}/model has no .safetensors file")
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


def losses(run: Path, stage: str) -> list[float]:
    log = run / "stages" / stage / "model" / "train_log.jsonl"
    if not log.exists():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [row["loss"] for row in rows if "loss" in row]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--stages", default=STAGES)
    args = p.parse_args()
    for stage in args.stages.split(","):
        a, b = weights(args.a, stage), weights(args.b, stage)
        if a.keys() != b.keys():
            raise SystemExit(f"{stage}: the two models have different tensors")
        diffs = {k: (a[k] - b[k]).abs().max().item() for k in a}
        rel = max(((a[k] - b[k]).norm() / a[k].norm().clamp_min(1e-12)).item() for k in a)
        worst = max(diffs, key=diffs.get)
        print(f"{stage}: {len(a)} tensors, max |a - b| {diffs[worst]:.3g} ({worst}), "
              f"max relative L2 difference {rel:.3g}")  # fmt: skip
        la, lb = losses(args.a, stage), losses(args.b, stage)
        if la or lb:
            gap = max((abs(x - y) for x, y in zip(la, lb, strict=True)), default=0.0)
            print(f"  losses a {[round(x, 4) for x in la]}\n  losses b {[round(x, 4) for x in lb]}"
                  f"\n  max loss difference {gap:.3g}")  # fmt: skip


if __name__ == "__main__":
    main()
