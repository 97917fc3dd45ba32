"""SFT with the LM head on completion positions only gives SFTTrainer's loss and gradients.

Tiny random model, LoRA with random ``B`` (so every adapter weight has a gradient), a padded
batch of two rows of different lengths: ``CompactHeadSFTTrainer`` against ``trl.SFTTrainer``'s
own ``compute_loss`` on the same trainer and batch.
"""

from __future__ import annotations

import torch
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer
from trl.trainer import utils

from srjudge.records import Message, PointwiseExample, Rubric
from srjudge.training.common import load_for_training, neutralize_rows
from srjudge.training.compact_head import CompactHeadSFTTrainer
from srjudge.training.sft import sft_rows

RUBRIC = Rubric("Is the answer correct?", ("wrong", "mostly wrong", "partly", "mostly", "right"))


def _examples() -> list[PointwiseExample]:
    return [
        PointwiseExample("a", [Message("user", "What is 2+2?")], "4", RUBRIC, gold_score=5,
                         gold_rationale="Right."),
        PointwiseExample("b", [Message("user", "What is 3+3? " * 5)], "7", RUBRIC, gold_score=1,
                         gold_rationale="Wrong: 3+3 is 6, the answer says 7."),
    ]  # fmt: skip


def test_compact_head_sft_same_loss_and_grads(tiny_model_dir, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model, tok = load_for_training(tiny_model_dir)
    rows = neutralize_rows(sft_rows(_examples()), tok, ("prompt", "completion"))
    trainer = CompactHeadSFTTrainer(
        model=model, processing_class=tok, train_dataset=Dataset.from_list(rows),
        args=SFTConfig(output_dir=str(tmp_path), report_to="none", max_length=2048,
                       completion_only_loss=True, bf16=False, per_device_train_batch_size=2,
                       use_cpu=True),  # the CPU path, even where a GPU is
        peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"),
    )  # fmt: skip
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert batch["input_ids"].shape[0] == 2
    seen: list[int] = []
    apply = utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(utils._ChunkedLogProbFunction, "apply",
                        lambda h, *a: seen.append(h.shape[0]) or apply(h, *a))  # fmt: skip

    def loss_and_grads(fn):
        trainer.model.zero_grad()
        loss = fn(trainer.model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters()
                 if p.grad is not None}  # fmt: skip
        return loss.detach(), grads

    loss_full, grads_full = loss_and_grads(lambda m, b: SFTTrainer.compute_loss(trainer, m, b))
    loss_compact, grads_compact = loss_and_grads(trainer.compute_loss)
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    ids = batch["input_ids"]
    assert seen == [ids.shape[0] * (ids.shape[1] - 1), labelled]
    assert labelled < ids.numel() / 2  # the prompts are not scored
    torch.testing.assert_close(loss_compact, loss_full, rtol=1e-5, atol=1e-6)
    assert grads_full and grads_full.keys() == grads_compact.keys()
    for name in grads_full:
        torch.testing.assert_close(grads_compact[name], grads_full[name], rtol=1e-4, atol=1e-7)
    assert utils._use_triton(ids.device) is False  # the patch is gone after the call


def _head_log_probs(model, hidden, ids, *, autocast: bool):
    """The fused head's per-token log-probs on fixed backbone outputs ``hidden``."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    backbone = model.base_model
    backbone.forward = lambda *a, **k: BaseModelOutputWithPast(last_hidden_state=hidden)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), torch.no_grad():
            return model(input_ids=ids, labels=ids, fused_lm_head=True).log_probs
    finally:
        del backbone.forward


def test_fp32_lm_head_runs_the_head_in_float32_under_autocast(tiny_model_dir):
    from trl.trainer.utils import add_fused_lm_head

    from srjudge.training.compact_head import fp32_lm_head

    torch.manual_seed(0)
    model, _ = load_for_training(tiny_model_dir)
    assert fp32_lm_head(model, outputs=("log_probs",)) is False  # no fused head yet: untouched
    add_fused_lm_head(model, outputs=("log_probs",))
    ids = torch.randint(0, model.config.vocab_size, (1, 12))
    hidden = torch.randn(1, 12, model.config.hidden_size) * 3
    exact = _head_log_probs(model, hidden, ids, autocast=False)
    bf16_head = _head_log_probs(model, hidden, ids, autocast=True)
    assert (bf16_head - exact).abs().max() > 1e-3  # TRL's head rounds the logits to bf16
    assert fp32_lm_head(model, outputs=("log_probs",)) is True
    torch.testing.assert_close(_head_log_probs(model, hidden, ids, autocast=True), exact)
    assert _head_log_probs(model, hidden, ids, autocast=False).shape == exact.shape


def test_trainers_get_the_fp32_head_with_bf16_only(tiny_model_dir, tmp_path):
    from srjudge.training.compact_head import head_model

    for bf16 in (False, True):
        torch.manual_seed(0)
        model, tok = load_for_training(tiny_model_dir)
        rows = neutralize_rows(sft_rows(_examples()), tok, ("prompt", "completion"))
        trainer = CompactHeadSFTTrainer(
            model=model, processing_class=tok, train_dataset=Dataset.from_list(rows),
            args=SFTConfig(output_dir=str(tmp_path / str(bf16)), report_to="none",
                           bf16=bf16, use_cpu=True),
            peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
        )  # fmt: skip
        inner = head_model(trainer.model)
        ids = torch.randint(0, inner.config.vocab_size, (1, 12))
        hidden = torch.randn(1, 12, inner.config.hidden_size) * 3
        exact = _head_log_probs(inner, hidden, ids, autocast=False)
        under_autocast = _head_log_probs(inner, hidden, ids, autocast=True)
        assert torch.equal(under_autocast, exact) == bf16 or not bf16
        if bf16:
            torch.testing.assert_close(under_autocast, exact)
        else:
            assert (under_autocast - exact).abs().max() > 1e-3
