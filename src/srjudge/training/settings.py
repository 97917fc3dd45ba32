"""Training settings: ``SFTSettings`` and ``DPOSettings`` (fields documented where declared,
checked on construction), and ``TrainResult``.

    SFTSettings(lora=True, max_steps=10)
    DPOSettings(beta=0.1, loss_type="sigmoid")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
"""TRL 1.x ``DPOConfig.loss_type`` values."""


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
class SFTSettings(CommonSettings):
    """Supervised fine-tuning on gold judgments (completion-only loss)."""

    def __post_init__(self) -> None:
        self._check_common()

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
