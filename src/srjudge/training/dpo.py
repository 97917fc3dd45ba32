"""DPO of a judge on preference pairs through TRL (``SharedPromptDPOTrainer`` by default).

    from srjudge.training.dpo import run_dpo
    from srjudge.training.settings import DPOSettings
    run_dpo("runs/x/j_sft", pairs, "runs/x/j1", DPOSettings(beta=0.1), ref_model="runs/x/j_sft")
    srjudge dpo --model runs/x/j_sft --pairs pairs.jsonl --ref runs/x/j_sft --out runs/x/j1

Rows: ``{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}``, the prompt being
exactly what the judge saw when it sampled (the model's special tokens in the text neutralised
by ``training.common.neutralize_rows``, as the sampling backend does). Output directory and resume:
``srjudge.training.common``.

Several processes: the same call under ``accelerate launch`` / ``torchrun`` (``torchrun
--nproc_per_node 2 -m srjudge.cli dpo ...``; ``srjudge.training.distributed``).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from srjudge.judging.prompts import template_info
from srjudge.records import PreferencePair
from srjudge.training.common import (
    CHECKPOINT_DIR,
    OutDir,
    assistant_message,
    check_out_dir,
    fit_rows,
    inputs_fingerprint,
    load_for_training,
    lora_config,
    message_dicts,
    neutralize_rows,
    note_repeated_rows,
    prepare_out,
    quiet_datasets,
    resolved_precision,
    train_and_save,
    training_args,
)
from srjudge.training.distributed import barrier, sharded_engine
from srjudge.training.settings import DPOSettings, TrainResult

log = logging.getLogger(__name__)


def dpo_rows(pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """``{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`` per pair."""
    return [
        {
            "prompt": message_dicts(p.prompt),
            "chosen": assistant_message(p.chosen),
            "rejected": assistant_message(p.rejected),
        }
        for p in pairs
    ]


# ---------------------------------------------------------------------------------------
# DPO


def _same_model(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def run_dpo(
    model: str,
    pairs: Sequence[PreferencePair],
    out_dir: str | Path,
    settings: DPOSettings | None = None,
    *,
    ref_model: str | None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """DPO ``model`` on ``pairs`` against the reference ``ref_model``.

    The reference (explicit, since the loop chooses it: the previous iteration or J_SFT):

    * ``None``, or the same directory as ``model``: the starting weights themselves. With LoRA
      that is the adapter-disabled base (no second copy is loaded). With full fine-tuning and
      ``precompute_ref_log_probs`` the log-probs come from the policy before its first step;
      without precompute TRL loads a second, frozen copy of ``model``.
    * another model: loaded as a separate frozen model; with ``precompute_ref_log_probs`` it is
      used once before training and then released.
    """
    from trl import DPOConfig

    from srjudge.models import resolve_model

    settings = settings or DPOSettings()
    started = time.time()
    path = resolve_model(model)
    ref_path = None if ref_model is None else resolve_model(ref_model)
    if ref_path is not None and _same_model(ref_path, path):
        ref_path = None
    check_out_dir(out_dir, model=path, ref=ref_path)
    policy, tokenizer = load_for_training(path)
    rows = neutralize_rows(dpo_rows(pairs), tokenizer, ("prompt", "chosen", "rejected"))
    rows, counts = fit_rows(rows, tokenizer, settings.max_length, ("chosen", "rejected"))
    counts = {"pairs": len(pairs), "rows": len(rows), **counts}
    if not rows:
        raise ValueError(f"no usable DPO rows: {counts}")
    fingerprint = inputs_fingerprint({"kind": "dpo", "model": path, "ref": ref_path, "rows": rows,
                                "settings": asdict(settings)})  # fmt: skip
    config = DPOConfig(
        **training_args(settings, Path(out_dir) / CHECKPOINT_DIR),
        beta=settings.beta,
        loss_type=[settings.loss_type],
        precompute_ref_log_probs=settings.precompute_ref_log_probs,
    )
    out = prepare_out(out_dir, fingerprint, config)
    note_repeated_rows(counts, config, out.ranks)
    trainer_class, trainer_note = _trainer_class(settings, config)
    if ref_path is not None:
        reference = "separate model"
    elif settings.lora:
        reference = "adapter-disabled base (input model)"
    else:
        reference = "input model"
    provenance = {
        "kind": "dpo",
        "input_model": model,
        "input_model_path": path,
        "ref_model": ref_model,
        "ref_model_path": ref_path or path,
        "reference": reference,
        "settings": asdict(settings),
        "learning_rate": settings.resolved_learning_rate(),
        "precision": resolved_precision(settings.precision),
        "trainer": trainer_note,
        "templates": [template_info(t) for t in _pair_templates(pairs)],
        "system_prompt_sha256": sorted({_system_hash(p) for p in pairs}),
        "strategies": dict(Counter(p.strategy for p in pairs)),
        "seed": settings.seed,
        "processes": out.ranks.count,
        "counts": counts,
        "fingerprint": fingerprint,
    }
    ref = load_for_training(ref_path)[0] if ref_path is not None else None
    with quiet_datasets(settings.disable_tqdm):
        trainer = trainer_class(
            model=policy,
            ref_model=ref,
            args=config,
            train_dataset=_rows_dataset(rows, out),
            processing_class=tokenizer,
            peft_config=lora_config(settings),
            callbacks=list(callbacks),
        )
        if settings.precompute_ref_log_probs and ref is not None:
            # The reference log-probs are columns of the dataset now; the trainer's own
            # ``accelerator.free_memory()`` at the start of ``train`` drops its last handle.
            trainer.ref_model = None
            del ref
            gc.collect()
        return train_and_save(trainer, out, provenance, started)


def _trainer_class(settings: DPOSettings, config: Any) -> tuple[type, str]:
    """``SharedPromptDPOTrainer`` unless it is off or parameters are sharded across ranks
    (FSDP, DeepSpeed: there the prefix forward is untested, so TRL's plain forward runs)."""
    from trl import DPOTrainer

    from srjudge.training.shared_prompt import SharedPromptDPOTrainer

    if not settings.share_prompt:
        return DPOTrainer, "DPOTrainer (share_prompt off)"
    engine = sharded_engine(config)
    if engine is not None:
        log.warning(
            "share_prompt: off under %s (the shared-prefix forward is tested with one process "
            "and DDP only); TRL's plain DPO forward runs instead",
            engine,
        )
        return DPOTrainer, f"DPOTrainer (share_prompt off under {engine})"
    return SharedPromptDPOTrainer, "SharedPromptDPOTrainer"


def _rows_dataset(rows: list[dict[str, Any]], out: OutDir) -> Any:
    """The rows as a dataset stored in the checkpoint folder (written by the main process).

    TRL caches the precomputed reference log-probs next to the dataset's files and the other
    ranks read that cache; an in-memory dataset would put it in a per-process temp folder,
    where the other ranks cannot find it."""
    from datasets import Dataset, load_from_disk

    path = out.ckpt_dir / "rows"
    if out.ranks.main:
        shutil.rmtree(path, ignore_errors=True)
        Dataset.from_list(rows).save_to_disk(str(path))
    barrier()
    return load_from_disk(str(path))


def _pair_templates(pairs: Sequence[PreferencePair]) -> list[str]:
    """Template ids recorded in the pairs' meta (``template_id``), when the curator set them."""
    return sorted({str(p.meta["template_id"]) for p in pairs if p.meta.get("template_id")})


def _system_hash(pair: PreferencePair) -> str:
    """sha256 of the pair's system message: identifies the judge template when no id is given."""
    system = next((m.content for m in pair.prompt if m.role == "system"), "")
    return hashlib.sha256(system.encode()).hexdigest()
