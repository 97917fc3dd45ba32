"""SFT and DPO of a judge through TRL, full fine-tuning or LoRA; the result is a plain model.

    from srjudge.train import SFTSettings, DPOSettings, run_sft, run_dpo
    run_sft("smollm2-135m", examples, "runs/x/sft_pointwise", SFTSettings(lora=True))
    run_dpo("runs/x/j_sft", pairs, "runs/x/j1", DPOSettings(beta=0.1), ref_model="runs/x/j_sft")

Rows given to TRL are conversational (``Message`` dicts); TRL applies the model's own chat
template, so training sees exactly the prompt that sampling renders (``judge_prompt``):

* SFT, prompt-completion: ``{"prompt": [system, user], "completion": [{"role": "assistant",
  "content": "<gold rationale> [RESULT] <gold>"}]}``; with ``completion_only_loss=True`` every
  prompt token has label -100, so the loss is on the judgment only.
* DPO: ``{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}``.

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
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srjudge.prompts import judge_template_id, template_info
from srjudge.records import Example, Message, PairwiseExample, PreferencePair

log = logging.getLogger(__name__)

PROVENANCE_FILE = "srjudge_train.json"
LOG_FILE = "train_log.jsonl"
CHECKPOINT_DIR = "checkpoints"
RESUME_FILE = "srjudge_resume.json"
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
"""TRL 1.x ``DPOConfig.loss_type`` values."""


@dataclass
class _Common:
    """Fields shared by SFT and DPO. Names follow TRL/transformers where one exists."""

    learning_rate: float | None = None
    """Peak learning rate; None picks the method's default (see ``resolved_learning_rate``)."""
    num_train_epochs: float = 1.0
    """Passes over the training rows (ignored when ``max_steps`` > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 = run ``num_train_epochs``."""
    per_device_train_batch_size: int = 1
    """Rows per forward pass (a DPO row is a pair: chosen and rejected are run together)."""
    gradient_accumulation_steps: int = 8
    """Forward passes per optimizer step (effective batch = batch size x this)."""
    max_length: int = 2048
    """Max tokens of prompt + completion; longer rows are truncated at the end (the judgment
    is cut), and rows whose prompt alone reaches it are skipped and counted."""
    lora: bool = False
    """Train LoRA adapters instead of all weights; they are merged into the saved model."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    lora_target_modules: list[str] | str = "all-linear"
    """Modules given adapters: PEFT's ``"all-linear"`` (every linear layer except the output
    head) or a list of module names (e.g. ``["q_proj", "v_proj"]``)."""
    seed: int = 0
    """Seeds adapter init, data order and dropout."""
    logging_steps: int = 1
    """Log loss (into ``train_log.jsonl``) every this many optimizer steps."""
    save_steps: int = 50
    """Checkpoint every this many optimizer steps (for resuming after a crash)."""
    disable_tqdm: bool = False
    """Hide the progress bars (TRL shows them by default)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~20% slower (TRL's default is
    on; ours is off, since judges here are small and mostly trained on CPU)."""

    def _check_common(self) -> None:
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps <= 0 and not self.num_train_epochs > 0:
            raise ValueError("num_train_epochs must be > 0 (or set max_steps > 0)")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (use epochs) or > 0, got {self.max_steps}")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
                     "lora_r", "lora_alpha", "logging_steps", "save_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules is empty")


@dataclass
class SFTSettings(_Common):
    """Supervised fine-tuning on gold judgments (completion-only loss)."""

    def __post_init__(self) -> None:
        self._check_common()

    def resolved_learning_rate(self) -> float:
        """``learning_rate``, else 2e-4 with LoRA and 2e-5 for full fine-tuning."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora else 2e-5


@dataclass
class DPOSettings(_Common):
    """DPO on preference pairs against a fixed reference model."""

    beta: float = 0.1
    """Strength of the pull towards the reference (higher = stay closer)."""
    loss_type: str = "sigmoid"
    """TRL loss: ``sigmoid`` is the DPO paper's loss; see ``DPO_LOSS_TYPES``."""
    precompute_ref_log_probs: bool = True
    """Compute the reference log-probs of every pair once, before training, instead of a
    reference forward pass per step; the reference model is then released (with LoRA and no
    separate reference it is the adapter-disabled policy, so no copy is ever loaded)."""
    share_prompt: bool = True
    """Run each pair's prompt through the model once, not once for chosen and once for
    rejected (``srjudge.shared_prompt``): same log-probs and gradients, about half the
    compute for judge prompts that are much longer than their rationales. Off = TRL's plain
    two-row forward. Ignored with gradient checkpointing."""

    def __post_init__(self) -> None:
        self._check_common()
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.loss_type not in DPO_LOSS_TYPES:
            raise ValueError(f"loss_type {self.loss_type!r} unknown; choose from {DPO_LOSS_TYPES}")

    def resolved_learning_rate(self) -> float:
        """``learning_rate``, else 5e-5 with LoRA and 5e-7 for full fine-tuning."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 5e-5 if self.lora else 5e-7


@dataclass
class TrainResult:
    model_dir: Path
    """The saved ``save_pretrained`` directory."""
    counts: dict[str, int]
    """Rows trained on and rows skipped, by reason."""
    loss_history: list[dict[str, float]]
    """``{"step", "epoch", "loss"}`` per logging step."""
    seconds: dict[str, float] = field(default_factory=dict)
    resumed_from: str | None = None
    """The checkpoint training resumed from, if any."""


# ---------------------------------------------------------------------------------------
# rows (pure)


def _message_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def gold_verdict_of(example: Example) -> int | None:
    """Integer gold: a pointwise mean rounded half up (3.5 -> 4); pairwise 1 or 2; a tie or
    no gold -> None.

    >>> from srjudge.records import PointwiseExample, Rubric
    >>> ex = PointwiseExample("a", [Message("user", "q")], "r", Rubric("c", tuple("abcde")))
    >>> ex.gold_score = 3.5; gold_verdict_of(ex)
    4
    """
    if isinstance(example, PairwiseExample):
        pref = example.gold_preference
        return pref if pref in (1, 2) else None  # type: ignore[return-value]
    if example.gold_score is None:
        return None
    return math.floor(example.gold_score + 0.5)


def _sft_row(example: Example, score_only: bool) -> dict[str, Any] | str:
    """The row, or the reason it is skipped."""
    gold = gold_verdict_of(example)
    if gold is None:
        tie = isinstance(example, PairwiseExample) and example.gold_preference == "tie"
        return "skipped_tie" if tie else "skipped_no_gold"
    rationale = (example.gold_rationale or "").strip()
    if not score_only and not rationale:
        return "skipped_no_rationale"
    from srjudge.prompts import judge_prompt

    text = f"[RESULT] {gold}" if score_only else f"{rationale} [RESULT] {gold}"
    return {
        "prompt": _message_dicts(judge_prompt(example, score_only=score_only)),
        "completion": _assistant(text),
    }


def _sft_rows_counted(
    examples: Sequence[Example], score_only: bool
) -> tuple[list[dict[str, Any]], Counter[str], set[str]]:
    """Rows, skip counts by reason, and the template ids of the rows kept."""
    rows, counts, templates = [], Counter(), set()
    for ex in examples:
        row = _sft_row(ex, score_only)
        if isinstance(row, str):
            counts[row] += 1
        else:
            rows.append(row)
            templates.add(judge_template_id(ex.kind, score_only=score_only))
    return rows, counts, templates


def sft_rows(examples: Sequence[Example], *, score_only: bool = False) -> list[dict[str, Any]]:
    """Conversational prompt-completion rows for SFT; examples without a gold verdict (ties
    included) or, unless ``score_only``, without a gold rationale are left out.

    The completion is ``"<rationale> [RESULT] <gold>"`` (``"[RESULT] <gold>"`` when
    ``score_only``), the format ``parsing.parse_judgment`` reads back.
    """
    return _sft_rows_counted(examples, score_only)[0]


def dpo_rows(pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """``{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`` per pair."""
    return [
        {
            "prompt": _message_dicts(p.prompt),
            "chosen": _assistant(p.chosen),
            "rejected": _assistant(p.rejected),
        }
        for p in pairs
    ]


# ---------------------------------------------------------------------------------------
# shared machinery


def _tokens(tokenizer: Any, messages: list[dict[str, str]], *, generation: bool) -> int:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _fit(
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


def _fingerprint(payload: dict[str, Any]) -> str:
    """Identity of a run's inputs, for resuming; progress-bar display is not an input."""
    payload = {**payload, "settings": {**payload["settings"], "disable_tqdm": None}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _resume_checkpoint(ckpt_dir: Path, fingerprint: str) -> str | None:
    """The latest checkpoint of an interrupted run with the same inputs; refuses a mismatch."""
    from transformers.trainer_utils import get_last_checkpoint

    marker = ckpt_dir / RESUME_FILE
    if not ckpt_dir.is_dir():
        return None
    last = get_last_checkpoint(str(ckpt_dir))
    if last is None:
        return None
    saved = json.loads(marker.read_text()).get("fingerprint") if marker.is_file() else None
    if saved != fingerprint:
        raise RuntimeError(
            f"{ckpt_dir} holds a checkpoint of a run with different inputs (model, data or "
            "settings); delete it to start over, or rerun with the original inputs to resume"
        )
    return last


def _training_args(s: _Common, ckpt_dir: Path) -> dict[str, Any]:
    import torch

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
        # bf16 autocast where the GPU supports it; float32 on CPU (TRL's default bf16=True
        # refuses to start there)
        "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    }


def _lora_config(s: _Common) -> Any:
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


def _load(path: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # float32: training runs on CPU as well; the saved model keeps this dtype
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tokenizer


@contextlib.contextmanager
def _quiet_datasets(disable: bool) -> Iterator[None]:
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


def _train_and_save(
    trainer: Any,
    tokenizer: Any,
    out: Path,
    ckpt_dir: Path,
    resume: str | None,
    provenance: dict[str, Any],
    started: float,
) -> TrainResult:
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume)
    t1 = time.time()
    model = trainer.model
    if provenance["settings"]["lora"]:
        model = model.merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    history = trainer.state.log_history
    with open(out / LOG_FILE, "w", encoding="utf-8") as f:
        for entry in history:
            f.write(json.dumps(entry) + "\n")
    loss_history = _loss_history(history)
    seconds = {
        "setup": round(t0 - started, 2),
        "train": round(t1 - t0, 2),
        "save": round(time.time() - t1, 2),
        "total": round(time.time() - started, 2),
    }
    provenance |= {
        "resumed_from": resume,
        "optimizer_steps": trainer.state.global_step,
        "seconds": seconds,
        "loss_history": loss_history,
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainResult(out, provenance["counts"], loss_history, seconds, resume)


def _prepare_out(out_dir: str | Path, fingerprint: str) -> tuple[Path, Path, str | None]:
    out = Path(out_dir)
    ckpt_dir = out / CHECKPOINT_DIR
    resume = _resume_checkpoint(ckpt_dir, fingerprint)
    if resume:
        log.info("resuming from %s", resume)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / RESUME_FILE).write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    return out, ckpt_dir, resume


# ---------------------------------------------------------------------------------------
# SFT


def run_sft(
    model: str,
    examples: Sequence[Example],
    out_dir: str | Path,
    settings: SFTSettings | None = None,
    *,
    score_only: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """SFT ``model`` (alias, directory or hub id) on the gold judgments of ``examples``.

    Loss on the completion only (TRL prompt-completion rows, ``completion_only_loss=True``).
    ``callbacks``: extra ``transformers.TrainerCallback``s. Raises ``ValueError`` when no
    example is usable.
    """
    from trl import SFTConfig, SFTTrainer

    from srjudge.models import resolve_model

    settings = settings or SFTSettings()
    started = time.time()
    path = resolve_model(model)
    rows, counts, template_ids = _sft_rows_counted(examples, score_only)
    policy, tokenizer = _load(path)
    rows, fit_counts = _fit(rows, tokenizer, settings.max_length, ("completion",))
    counts = {"examples": len(examples), "rows": len(rows), **counts, **fit_counts}
    if not rows:
        raise ValueError(f"no usable SFT rows: {counts}")
    fingerprint = _fingerprint({"kind": "sft", "model": path, "rows": rows,
                                "settings": asdict(settings)})  # fmt: skip
    out, ckpt_dir, resume = _prepare_out(out_dir, fingerprint)
    provenance = {
        "kind": "sft",
        "input_model": model,
        "input_model_path": path,
        "settings": asdict(settings),
        "learning_rate": settings.resolved_learning_rate(),
        "score_only": score_only,
        "templates": [template_info(t) for t in sorted(template_ids)],
        "seed": settings.seed,
        "counts": counts,
        "fingerprint": fingerprint,
    }
    from datasets import Dataset

    config = SFTConfig(**_training_args(settings, ckpt_dir), completion_only_loss=True)
    with _quiet_datasets(settings.disable_tqdm):
        trainer = SFTTrainer(
            model=policy,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=_lora_config(settings),
            callbacks=list(callbacks),
        )
        return _train_and_save(trainer, tokenizer, out, ckpt_dir, resume, provenance, started)


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
    from trl import DPOConfig, DPOTrainer

    from srjudge.models import resolve_model
    from srjudge.shared_prompt import SharedPromptDPOTrainer

    settings = settings or DPOSettings()
    started = time.time()
    path = resolve_model(model)
    ref_path = None if ref_model is None else resolve_model(ref_model)
    if ref_path is not None and _same_model(ref_path, path):
        ref_path = None
    policy, tokenizer = _load(path)
    rows, counts = _fit(dpo_rows(pairs), tokenizer, settings.max_length, ("chosen", "rejected"))
    counts = {"pairs": len(pairs), "rows": len(rows), **counts}
    if not rows:
        raise ValueError(f"no usable DPO rows: {counts}")
    fingerprint = _fingerprint({"kind": "dpo", "model": path, "ref": ref_path, "rows": rows,
                                "settings": asdict(settings)})  # fmt: skip
    out, ckpt_dir, resume = _prepare_out(out_dir, fingerprint)
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
        "templates": [template_info(t) for t in _pair_templates(pairs)],
        "system_prompt_sha256": sorted({_system_hash(p) for p in pairs}),
        "strategies": dict(Counter(p.strategy for p in pairs)),
        "seed": settings.seed,
        "counts": counts,
        "fingerprint": fingerprint,
    }
    from datasets import Dataset

    config = DPOConfig(
        **_training_args(settings, ckpt_dir),
        beta=settings.beta,
        loss_type=[settings.loss_type],
        precompute_ref_log_probs=settings.precompute_ref_log_probs,
    )
    ref = _load(ref_path)[0] if ref_path is not None else None
    with _quiet_datasets(settings.disable_tqdm):
        trainer_class = SharedPromptDPOTrainer if settings.share_prompt else DPOTrainer
        trainer = trainer_class(
            model=policy,
            ref_model=ref,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=_lora_config(settings),
            callbacks=list(callbacks),
        )
        if settings.precompute_ref_log_probs and ref is not None:
            _release(trainer, ref)
            del ref
        return _train_and_save(trainer, tokenizer, out, ckpt_dir, resume, provenance, started)


def _release(trainer: Any, ref: Any) -> None:
    """Free a separate reference model once its log-probs are precomputed: TRL keeps it on the
    trainer and accelerate in its list of prepared models, though training no longer reads it."""
    trainer.ref_model = None
    trainer.accelerator._models = [m for m in trainer.accelerator._models if m is not ref]
    gc.collect()


def _pair_templates(pairs: Sequence[PreferencePair]) -> list[str]:
    """Template ids recorded in the pairs' meta (``template_id``), when the curator set them."""
    return sorted({str(p.meta["template_id"]) for p in pairs if p.meta.get("template_id")})


def _system_hash(pair: PreferencePair) -> str:
    """sha256 of the pair's system message: identifies the judge template when no id is given."""
    system = next((m.content for m in pair.prompt if m.role == "system"), "")
    return hashlib.sha256(system.encode()).hexdigest()
