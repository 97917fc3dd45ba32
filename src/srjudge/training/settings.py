"""Training settings: ``SFTSettings`` and ``DPOSettings`` (fields documented where declared,
checked on construction), and ``TrainResult``.

    SFTSettings(lora=True, max_steps=10)
    DPOSettings(beta=0.1, loss_type="sigmoid")

A bad value raises ``SettingsError`` (a ``ValueError``) listing every bad field at once, so a
run config reports all of them before any work (``loop.config``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self

DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
"""TRL 1.x ``DPOConfig.loss_type`` values."""


Problem = tuple[str | None, str]
"""(field, what is wrong with it); field None = a contradiction between fields."""


class SettingsError(ValueError):
    """Every bad field of one settings object, not just the first (``problems``)."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{f} {m}" if f else m for f, m in self.problems))


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise SettingsError(problems)


def out_of_range(
    value: float, low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> str | None:
    """None when ``value`` is in range (and finite), else what is wrong with it.

    >>> out_of_range(0, 0, 1, open_low=True)
    'must be in (0, 1], got 0'
    >>> out_of_range(3, 1) is None
    True
    """
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    below = low is not None and (value <= low if open_low else value < low)
    if not below and (high is None or value <= high):
        return None
    if high is None:
        return f"must be {'>' if open_low else '>='} {low}, got {value}"
    return f"must be in {'(' if open_low else '['}{low}, {high}], got {value}"


def range_problems(obj: object, ranges: dict[str, tuple]) -> list[Problem]:
    """``out_of_range`` for each field in ``ranges`` (``name -> (low, high[, open_low])``)
    whose value is not None."""
    out: list[Problem] = []
    for name, bounds in ranges.items():
        value = getattr(obj, name)
        low, high, *rest = bounds
        problem = None if value is None else out_of_range(value, low, high, open_low=bool(rest))
        if problem:
            out.append((name, problem))
    return out


PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class CommonSettings:
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
    precision: str = "auto"
    """Matrix products in the forward and backward passes: ``fp32``; ``bf16`` (autocast: the
    weights, LoRA adapters and optimizer state stay float32, matrix products run in bfloat16,
    on CPU too, where avx512_bf16/AMX make them faster; the LM head that scores the
    completion stays float32, ``compact_head.fp32_lm_head``; the loss and gradients against
    fp32 on real pairs: ``bench/results/dpo_precision.json``); ``auto`` = bf16 on a GPU that
    supports it, else fp32 (on CPU bf16 stays opt-in: that check found gradients 5-7% off
    fp32, cosine 0.9985-0.9989, and DPO losses up to 0.044 off)."""

    def per_process(self, processes: int) -> Self:
        """These settings for each of ``processes`` training processes, keeping the global
        batch (batch size x accumulation steps x processes) that one process has with them:
        ``gradient_accumulation_steps`` is divided first, then the batch size.

        >>> s = SFTSettings(per_device_train_batch_size=2, gradient_accumulation_steps=4)
        >>> p = s.per_process(8); (p.per_device_train_batch_size, p.gradient_accumulation_steps)
        (1, 1)
        """
        steps = math.gcd(self.gradient_accumulation_steps, processes)
        rest = processes // steps
        if self.per_device_train_batch_size % rest:
            raise ValueError(
                f"{processes} processes cannot keep the global batch of "
                f"per_device_train_batch_size {self.per_device_train_batch_size} x "
                f"gradient_accumulation_steps {self.gradient_accumulation_steps}: their product "
                f"must be a multiple of {processes}"
            )
        return replace(
            self,
            per_device_train_batch_size=self.per_device_train_batch_size // rest,
            gradient_accumulation_steps=self.gradient_accumulation_steps // steps,
        )

    def field_problems(self) -> list[Problem]:
        """Every bad field; reads only this object's own fields (``loop.schema`` also calls it
        on a namespace of the well-typed values when another value is bad)."""
        out = range_problems(self, {"learning_rate": (0, None, True), "seed": (0, None)})
        if self.max_steps <= 0 and not self.num_train_epochs > 0:
            out.append(("num_train_epochs", f"must be > 0 (or set max_steps > 0), got "
                        f"{self.num_train_epochs}"))  # fmt: skip
        if self.max_steps == 0 or self.max_steps < -1:
            out.append(("max_steps", f"must be -1 (use epochs) or > 0, got {self.max_steps}"))
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
                     "lora_r", "lora_alpha", "logging_steps", "save_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                out.append((name, f"must be >= 1, got {getattr(self, name)}"))
        if not 0 <= self.lora_dropout < 1:
            out.append(("lora_dropout", f"must be in [0, 1), got {self.lora_dropout}"))
        if not self.lora_target_modules:
            out.append(("lora_target_modules", "is empty"))
        if self.precision not in PRECISIONS:
            out.append(("precision", f"{self.precision!r} unknown; choose from "
                        f"{', '.join(PRECISIONS)}"))  # fmt: skip
        return out


@dataclass
class SFTSettings(CommonSettings):
    """Supervised fine-tuning on gold judgments (completion-only loss)."""

    def __post_init__(self) -> None:
        raise_problems(self.field_problems())

    def resolved_learning_rate(self) -> float:
        """``learning_rate``, else 2e-4 with LoRA and 2e-5 for full fine-tuning."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora else 2e-5


@dataclass
class DPOSettings(CommonSettings):
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
    rejected (``srjudge.training.shared_prompt``): same log-probs and gradients, about half the
    compute for judge prompts that are much longer than their rationales. Off = TRL's plain
    two-row forward. Ignored with gradient checkpointing."""

    def __post_init__(self) -> None:
        raise_problems(self.field_problems())

    def field_problems(self) -> list[Problem]:
        problems = CommonSettings.field_problems(self)  # not super(): may run on a namespace
        problems += range_problems(self, {"beta": (0, None, True)})
        if self.loss_type not in DPO_LOSS_TYPES:
            known = ", ".join(DPO_LOSS_TYPES)
            problems.append(("loss_type", f"{self.loss_type!r} unknown; choose from {known}"))
        return problems

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
