"""What SFT and DPO share: loading a model for training, fitting rows to ``max_length``,
checkpoints and resume, saving the model with its provenance.

Output directory (``out_dir``), written in this order:

* ``config.json``, ``model.safetensors``, tokenizer files: a ``save_pretrained`` model that
  ``AutoModelForCausalLM.from_pretrained(out_dir)`` loads alone (LoRA adapters are merged into
  the base with ``merge_and_unload`` before saving);
* ``train_log.jsonl``: the trainer's log history, one entry per logging step (the loss curve);
* ``srjudge_train.json``: provenance (settings, input and reference model, template ids and
  hashes, seed, counts, timings, loss history, library versions). Written last: its presence
  means the run completed.

Crash and resume: the trainer saves a checkpoint (weights, optimizer, scheduler, RNG, log
history) into ``out_dir/checkpoints/`` every ``save_steps`` optimizer steps, keeping only the
latest (``save_total_limit=1``), next to ``srjudge_resume.json``, a fingerprint of the inputs.
Calling the same function again with the same inputs resumes from that checkpoint
(``resume_from_checkpoint``); with different inputs it refuses, since mixing two runs would be
neither run. The checkpoints are deleted once the final model and provenance are written.

Several processes (``accelerate launch`` / ``torchrun``, see ``srjudge.training.distributed``):
every rank computes the same rows and fingerprint and they must agree; only the main process
writes the resume marker, the model (through ``Trainer.save_model``, which gathers FSDP and
DeepSpeed shards), the log and the provenance. A LoRA run saves its adapter into the
checkpoint folder and the main process merges it into the base read from disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srjudge.judging.chat import chat_messages
from srjudge.paths import refuse_foreign_dir, refuse_same_paths
from srjudge.records import Message
from srjudge.training.distributed import Ranks, agree, barrier, ranks_of
from srjudge.training.settings import CommonSettings, TrainResult

log = logging.getLogger(__name__)

PROVENANCE_FILE = "srjudge_train.json"
LOG_FILE = "train_log.jsonl"
CHECKPOINT_DIR = "checkpoints"
RESUME_FILE = "srjudge_resume.json"


# ---------------------------------------------------------------------------------------
# rows (pure)


def message_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def assistant_message(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def neutralize_rows(
    rows: list[dict[str, Any]], tokenizer: Any, keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Rows whose message lists under ``keys`` (``prompt``, ``completion``, ``chosen``...) went
    through ``judging.chat.chat_messages``: the model's special tokens spelled in the text are
    neutralised exactly as the sampling backend neutralises them, so TRL's chat template
    tokenizes them as plain text and training sees the tokens sampling sees."""
    return [{**row, **{key: chat_messages(tokenizer, row[key]) for key in keys}} for row in rows]


# ---------------------------------------------------------------------------------------
# shared machinery


def _tokens(tokenizer: Any, messages: list[dict[str, str]], *, generation: bool) -> int:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def fit_rows(
    rows: list[dict[str, Any]], tokenizer: Any, max_length: int, completions: tuple[str, ...]
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Drop rows whose prompt alone fills ``max_length`` (TRL would drop them silently) and
    count those that will be truncated."""
    kept, counts = [], Counter()
    for row in rows:
        if _tokens(tokenizer, row["prompt"], generation=True) >= max_length:
            counts["skipped_prompt_too_long"] += 1
            continue
        longest = max(
            _tokens(tokenizer, row["prompt"] + row[c], generation=False) for c in completions
        )
        if longest > max_length:
            counts["truncated"] += 1
        kept.append(row)
    return kept, counts


def inputs_fingerprint(payload: dict[str, Any]) -> str:
    """Identity of a run's inputs, for resuming; progress-bar display is not an input."""
    payload = {**payload, "settings": {**payload["settings"], "disable_tqdm": None}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint of the highest step whose ``trainer_state.json`` (the trainer writes it
    last) exists: a process killed while saving leaves a later, incomplete folder behind."""
    steps = {}
    for d in ckpt_dir.glob("checkpoint-*"):
        step = d.name.removeprefix("checkpoint-")
        if step.isdigit() and (d / "trainer_state.json").is_file():
            steps[int(step)] = d
    return steps[max(steps)] if steps else None


def _resume_checkpoint(ckpt_dir: Path, fingerprint: str) -> str | None:
    """The latest checkpoint of an interrupted run with the same inputs; refuses a mismatch."""
    marker = ckpt_dir / RESUME_FILE
    if not ckpt_dir.is_dir():
        return None
    last = last_complete_checkpoint(ckpt_dir)
    if last is None:
        return None
    saved = json.loads(marker.read_text()).get("fingerprint") if marker.is_file() else None
    if saved != fingerprint:
        raise RuntimeError(
            f"{ckpt_dir} holds a checkpoint of a run with different inputs (model, data or "
            "settings); delete it to start over, or rerun with the original inputs to resume"
        )
    return str(last)


def training_args(s: CommonSettings, ckpt_dir: Path) -> dict[str, Any]:
    return {
        "output_dir": str(ckpt_dir),
        "learning_rate": s.resolved_learning_rate(),
        "num_train_epochs": s.num_train_epochs,
        "max_steps": s.max_steps,
        "per_device_train_batch_size": s.per_device_train_batch_size,
        "gradient_accumulation_steps": s.gradient_accumulation_steps,
        "max_length": s.max_length,
        "seed": s.seed,
        "logging_steps": s.logging_steps,
        "save_strategy": "steps",
        "save_steps": s.save_steps,
        "save_total_limit": 1,
        "report_to": "none",
        "disable_tqdm": s.disable_tqdm,
        "gradient_checkpointing": s.gradient_checkpointing,
        **precision_args(s.precision),
    }


def resolved_precision(precision: str) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 on a GPU that supports it, else fp32."""
    import torch

    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def precision_args(precision: str) -> dict[str, Any]:
    """Trainer arguments for ``precision``: bf16 autocast (TRL's default ``bf16=True``) or
    float32; without a GPU, bf16 autocast runs on the CPU (transformers wants ``use_cpu``)."""
    import torch

    bf16 = resolved_precision(precision) == "bf16"
    return {"bf16": bf16, **({"use_cpu": True} if bf16 and not torch.cuda.is_available() else {})}


def lora_config(s: CommonSettings) -> Any:
    if not s.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=s.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def load_for_training(path: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # float32: training runs on CPU as well; the saved model keeps this dtype
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tokenizer


@contextlib.contextmanager
def quiet_datasets(disable: bool) -> Iterator[None]:
    """Hide datasets' map/filter bars too when the caller disabled progress bars."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    if disable:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if disable and not was_disabled:
            datasets.enable_progress_bars()


def _loss_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [
        {"step": e["step"], "epoch": e.get("epoch"), "loss": e["loss"]}
        for e in log_history
        if "loss" in e
    ]


def _versions() -> dict[str, str]:
    return {
        name: importlib.metadata.version(name)
        for name in ("trl", "transformers", "torch", "peft", "accelerate", "datasets")
    }


@dataclass(frozen=True)
class OutDir:
    """Where one training run writes, and the checkpoint it resumes from."""

    out: Path
    ckpt_dir: Path
    resume: str | None
    ranks: Ranks


def train_and_save(
    trainer: Any,
    out: OutDir,
    provenance: dict[str, Any],
    started: float,
) -> TrainResult:
    """Train (resuming if ``out.resume``), then save the model, log and provenance (main
    process only) and delete the checkpoints; every rank returns the same result."""
    t0 = time.time()
    trainer.train(resume_from_checkpoint=out.resume)
    t1 = time.time()
    _save_model(trainer, out, provenance)
    history = trainer.state.log_history
    loss_history = _loss_history(history)
    seconds = {
        "setup": round(t0 - started, 2),
        "train": round(t1 - t0, 2),
        "save": round(time.time() - t1, 2),
        "total": round(time.time() - started, 2),
    }
    provenance |= {
        "resumed_from": out.resume,
        "optimizer_steps": trainer.state.global_step,
        "seconds": seconds,
        "loss_history": loss_history,
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if out.ranks.main:
        with open(out.out / LOG_FILE, "w", encoding="utf-8") as f:
            for entry in history:
                f.write(json.dumps(entry) + "\n")
        (out.out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    barrier()
    if out.ranks.main:
        shutil.rmtree(out.ckpt_dir, ignore_errors=True)
    return TrainResult(out.out, provenance["counts"], loss_history, seconds, out.resume)


def _save_model(trainer: Any, out: OutDir, provenance: dict[str, Any]) -> None:
    """The ``save_pretrained`` model in ``out.out``; every rank takes part (sharded engines
    gather their parameters), the main process writes."""
    if not provenance["settings"]["lora"]:
        trainer.save_model(str(out.out))
        return
    adapter = out.ckpt_dir / "adapter"
    trainer.save_model(str(adapter))
    if out.ranks.main:
        merge_adapter(provenance["input_model_path"], adapter, out.out)


def merge_adapter(base: str, adapter: Path, out: Path) -> None:
    """Merge a saved LoRA adapter into its base model and save the result (float32)."""
    from peft import PeftModel

    model, tokenizer = load_for_training(base)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def repeated_rows(rows: int, batch_size: int, processes: int) -> int:
    """Rows that accelerate repeats each epoch to give every process a full last batch
    (``even_batches``): one process would take a smaller last step instead, so training
    then differs from the one-process run. 0 when the rows fill whole steps.

    >>> repeated_rows(5, 1, 2), repeated_rows(4, 1, 2), repeated_rows(5, 2, 1)
    (1, 0, 0)
    """
    return 0 if processes == 1 else -rows % (batch_size * processes)


def note_repeated_rows(counts: dict[str, int], args: Any, ranks: Ranks) -> None:
    """Count (and warn about) the rows repeated to fill each epoch's last step."""
    repeated = repeated_rows(counts["rows"], args.per_device_train_batch_size, ranks.count)
    if repeated:
        counts["rows_repeated_per_epoch"] = repeated
        if ranks.main:
            log.warning(
                "%d rows over %d processes x batch %d: each epoch's last step repeats %d rows "
                "from its start (accelerate's even_batches), where one process would take a "
                "smaller last step; for identical training use a multiple of %d rows",
                counts["rows"], ranks.count, args.per_device_train_batch_size, repeated,
                ranks.count * args.per_device_train_batch_size,
            )  # fmt: skip


_MODEL_OUT_MARKERS = (PROVENANCE_FILE, CHECKPOINT_DIR, "srjudge_merge.json", "srjudge_model.json")


def check_out_dir(out_dir: str | Path, **models: str | None) -> None:
    """Refuse, before a model loads: an ``out_dir`` that is one of the input ``models``
    (``model=path, ref_model=path``), or a non-empty folder srjudge did not write a model to."""
    inputs = {f"--{k.replace('_', '-')}": v for k, v in models.items() if v is not None}
    refuse_same_paths(inputs, {"--out": out_dir})
    refuse_foreign_dir(
        out_dir,
        "--out",
        "a model folder written by srjudge",
        lambda d: any((d / name).exists() for name in _MODEL_OUT_MARKERS),
    )


def prepare_out(out_dir: str | Path, fingerprint: str, args: Any) -> OutDir:
    """Check that every rank holds the same inputs, find the checkpoint to resume from, and
    (main process) write the resume marker. ``args``: the trainer's ``TrainingArguments``."""
    ranks = ranks_of(args)
    agree(fingerprint, "the training inputs (fingerprint of model, rows and settings)")
    out = Path(out_dir)
    ckpt_dir = out / CHECKPOINT_DIR
    resume = _resume_checkpoint(ckpt_dir, fingerprint)
    agree(str(resume), "the checkpoint to resume from")
    if resume:
        log.info("resuming from %s", resume)
    barrier()  # every rank has read the old marker before the main process rewrites it
    if ranks.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / RESUME_FILE).write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    barrier()
    return OutDir(out, ckpt_dir, resume, ranks)
