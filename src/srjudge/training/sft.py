"""SFT of a judge on gold judgments through TRL's ``SFTTrainer``, full or LoRA.

    from srjudge.training.sft import run_sft
    from srjudge.training.settings import SFTSettings
    run_sft("smollm2-135m", examples, "runs/x/sft_pointwise", SFTSettings(lora=True))
    srjudge sft --model smollm2-135m --data train.jsonl --out runs/x/sft_pointwise

Rows are conversational prompt-completion: ``{"prompt": [system, user], "completion":
[{"role": "assistant", "content": "<gold rationale> [RESULT] <gold>"}]}``; TRL applies the
model's own chat template, so training sees exactly the prompt sampling renders
(``judge_prompt``; the model's special tokens in the text neutralised by
``training.common.neutralize_rows`` as the sampling backend's ``judging.chat`` does), and with
``completion_only_loss=True`` the loss is on the judgment only.
Output directory and resume: ``srjudge.training.common``.

Several processes: the same call under ``accelerate launch`` / ``torchrun`` (``torchrun
--nproc_per_node 2 -m srjudge.cli sft ...``; ``srjudge.training.distributed``).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from srjudge.judging.prompts import judge_template_id, template_info
from srjudge.records import Example, PairwiseExample
from srjudge.training.common import (
    CHECKPOINT_DIR,
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
from srjudge.training.settings import SFTSettings, TrainResult


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
    from srjudge.judging.prompts import judge_prompt

    text = f"[RESULT] {gold}" if score_only else f"{rationale} [RESULT] {gold}"
    return {
        "prompt": message_dicts(judge_prompt(example, score_only=score_only)),
        "completion": assistant_message(text),
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
    from trl import SFTConfig

    from srjudge.models import resolve_model
    from srjudge.training.compact_head import CompactHeadSFTTrainer

    settings = settings or SFTSettings()
    started = time.time()
    path = resolve_model(model)
    check_out_dir(out_dir, model=path)
    rows, counts, template_ids = _sft_rows_counted(examples, score_only)
    policy, tokenizer = load_for_training(path)
    rows = neutralize_rows(rows, tokenizer, ("prompt", "completion"))
    rows, fit_counts = fit_rows(rows, tokenizer, settings.max_length, ("completion",))
    counts = {"examples": len(examples), "rows": len(rows), **counts, **fit_counts}
    if not rows:
        raise ValueError(f"no usable SFT rows: {counts}")
    fingerprint = inputs_fingerprint({"kind": "sft", "model": path, "rows": rows,
                                "settings": asdict(settings)})  # fmt: skip
    config = SFTConfig(
        **training_args(settings, Path(out_dir) / CHECKPOINT_DIR), completion_only_loss=True
    )
    out = prepare_out(out_dir, fingerprint, config)
    note_repeated_rows(counts, config, out.ranks)
    provenance = {
        "kind": "sft",
        "input_model": model,
        "input_model_path": path,
        "settings": asdict(settings),
        "learning_rate": settings.resolved_learning_rate(),
        "precision": resolved_precision(settings.precision),
        "score_only": score_only,
        "templates": [template_info(t) for t in sorted(template_ids)],
        "seed": settings.seed,
        "processes": out.ranks.count,
        "counts": counts,
        "fingerprint": fingerprint,
    }
    from datasets import Dataset

    with quiet_datasets(settings.disable_tqdm):
        trainer = CompactHeadSFTTrainer(
            model=policy,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(settings),
            callbacks=list(callbacks),
        )
        return train_and_save(trainer, out, provenance, started)
