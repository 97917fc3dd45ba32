"""DPO loss and gradients of ours (fp32, bf16 autocast) against TRL's plain fp32 step, real pairs.

One DPO training step (forward, reference pass through the adapter-disabled policy, backward;
no optimizer step) per pair on SmolLM2-135M with LoRA r=16 on all linear layers, for the first
K pairs of ``bench/dpo.py`` (MT-Bench GPT-4 disagreements, ~1000-token prompts), three ways:

* ``trl_fp32``: ``trl.DPOTrainer`` in float32 (the reference: every prompt twice, the LM head on
  every position);
* ``ours_fp32``: ``SharedPromptDPOTrainer`` in float32 (prompt once, head on completion tokens);
* ``ours_bf16``: the same with ``precision="bf16"`` (autocast on CPU; weights, LoRA and
  gradients stay float32, and so does the LM head: ``compact_head.fp32_lm_head``).

The LoRA ``B`` matrices get the same random values in all three (seeded), so that the policy
differs from the reference and every adapter weight has a gradient. Reported per pair: the
loss, |loss - trl_fp32 loss|, the gradient's relative L2 error and cosine (in float64) against
trl_fp32, and the seconds of the step.

    python bench/dpo_precision.py                 # 2 pairs -> bench/results/dpo_precision.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dpo import RESULTS, conditions, load_pairs  # noqa: E402

KINDS = ("trl_fp32", "ours_fp32", "ours_bf16")


def trainer_for(kind: str, rows, out: str):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from srjudge.models import resolve_model
    from srjudge.training.common import load_for_training, precision_args
    from srjudge.training.shared_prompt import SharedPromptDPOTrainer

    torch.manual_seed(0)
    policy, tokenizer = load_for_training(resolve_model("smollm2-135m"))
    config = DPOConfig(
        output_dir=out, per_device_train_batch_size=1, max_length=2048, report_to="none",
        precompute_ref_log_probs=False, disable_tqdm=True, gradient_checkpointing=False,
        **precision_args("bf16" if kind.endswith("bf16") else "fp32"),
    )  # fmt: skip
    cls = DPOTrainer if kind == "trl_fp32" else SharedPromptDPOTrainer
    trainer = cls(
        model=policy, args=config, train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in sorted(trainer.model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    return trainer


def run(kind: str, rows) -> list[dict]:
    trainer = trainer_for(kind, rows, tempfile.mkdtemp(prefix="bench-dpo-precision-"))
    out = []
    # as Trainer.train does: accelerate wraps the forward in bf16 autocast when args.bf16
    model = trainer.accelerator.prepare_model(trainer.model)
    for batch in trainer.get_train_dataloader():
        batch = trainer._prepare_inputs(batch)
        model.zero_grad()
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train otherwise
        started = time.perf_counter()
        loss = trainer.training_step(model, batch)
        seconds = time.perf_counter() - started
        grads = {n: p.grad.clone() for n, p in model.named_parameters()
                 if p.grad is not None}  # fmt: skip
        dtypes = {str(p.dtype) for p in model.parameters()} | {str(g.dtype) for g in grads.values()}
        out.append({"loss": float(loss), "grads": grads, "seconds": seconds, "dtypes": dtypes})
    return out


def compare(ref: dict, got: dict) -> dict:
    names = sorted(ref["grads"])
    a = torch.cat([ref["grads"][n].flatten() for n in names])
    b = torch.cat([got["grads"][n].flatten() for n in names])
    return {
        "loss": got["loss"],
        "loss_abs_diff": abs(got["loss"] - ref["loss"]),
        "grad_rel_l2": float((b - a).norm() / a.norm()),
        "grad_cosine": float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0)),
        "grad_max_abs_diff": float((b - a).abs().max()),
        "seconds": got["seconds"],
        "param_and_grad_dtypes": sorted(got["dtypes"]),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=2)
    args = p.parse_args()
    from transformers import AutoTokenizer

    from srjudge.models import resolve_model
    from srjudge.training.common import neutralize_rows
    from srjudge.training.dpo import dpo_rows

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    rows = neutralize_rows(dpo_rows(load_pairs(args.pairs)), tok, ("prompt", "chosen", "rejected"))
    report = {"command": "python bench/dpo_precision.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "before": conditions(), "pairs": len(rows)}  # fmt: skip
    ref = run("trl_fp32", rows)
    report["trl_fp32"] = [{"loss": r["loss"], "seconds": r["seconds"]} for r in ref]
    for kind in KINDS[1:]:
        report[kind] = [compare(r, g) for r, g in zip(ref, run(kind, rows), strict=True)]
        print(kind, json.dumps(report[kind]), flush=True)
    report["after"] = conditions()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dpo_precision.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
