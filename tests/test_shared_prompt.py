"""The shared-prompt DPO forward gives TRL's log-probs, loss and gradients, with less work.

Compared on the tiny random model against ``trl.DPOTrainer``'s own methods called on the same
trainer and batch, with random (non-zero) LoRA weights and no dropout so that both paths
compute the same function.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from trl import DPOConfig, DPOTrainer

from srjudge.records import Message, PreferencePair
from srjudge.training.common import load_for_training, precision_args
from srjudge.training.compact_head import compact_lm_head
from srjudge.training.dpo import dpo_rows
from srjudge.training.shared_prompt import (
    SharedPromptDPOTrainer,
    _backbone,
    shared_prompt_forward,
)


def _pairs() -> list[PreferencePair]:
    """Two prompts of different lengths; completions of different lengths, one pair whose
    completions share their first words (the shared prefix runs into the completion)."""
    short = [Message("user", "Rate: 2+2 = 4.")]
    question = "Rate this answer to a longer question about sums: 2+2 = 4. " * 3
    long = [Message("system", "You are a strict judge."), Message("user", question)]
    return [
        PreferencePair(
            "a", short, "It is correct. [RESULT] 5", "Wrong. [RESULT] 1", 5, 1, "s", "r"
        ),
        PreferencePair(
            "b",
            long,
            "It is right, the sum holds. [RESULT] 5",
            "It is wrong. [RESULT] 2",
            5,
            2,
            "s",
            "r",
        ),  # fmt: skip
    ]


def _trainer(
    model_dir: str, tmp_path, *, lora: bool, precision: str = "fp32"
) -> SharedPromptDPOTrainer:
    torch.manual_seed(0)
    policy, tokenizer = load_for_training(model_dir)
    # on the CPU even where a GPU is (these pin CPU behaviour; on CUDA TRL's own fused head
    # already scores labelled positions only, and the batches here are built on the CPU)
    config = DPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=2, max_length=512,
        report_to="none", precompute_ref_log_probs=False, disable_tqdm=True,
        gradient_checkpointing=False, **(precision_args(precision) | {"use_cpu": True}),
    )  # fmt: skip
    peft = (
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
        if lora
        else None
    )
    trainer = SharedPromptDPOTrainer(
        model=policy, args=config, train_dataset=Dataset.from_list(dpo_rows(_pairs())),
        processing_class=tokenizer, peft_config=peft,
    )  # fmt: skip
    with torch.no_grad():  # move the policy away from the reference (LoRA B starts at zero)
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
            elif not lora:
                p.add_(torch.randn_like(p) * 0.01)
    return trainer


def _batch(trainer):
    return trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))


def _loss_and_grads(loss_fn, trainer, batch):
    trainer.model.zero_grad()
    loss = loss_fn(trainer.model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_same_logps_loss_and_gradients_as_trl(tiny_model_dir, tmp_path, lora):
    trainer = _trainer(tiny_model_dir, tmp_path, lora=lora)
    batch = _batch(trainer)
    assert batch["input_ids"].shape[0] == 4  # 2 pairs: chosen rows then rejected rows

    shared_ref = trainer.compute_ref_log_probs(trainer.model, batch)
    plain_ref = DPOTrainer.compute_ref_log_probs(trainer, trainer.model, batch)
    for s, p in zip(shared_ref, plain_ref, strict=True):
        torch.testing.assert_close(s, p, rtol=1e-4, atol=1e-4)

    loss_s, grads_s = _loss_and_grads(trainer.compute_loss, trainer, batch)
    loss_p, grads_p = _loss_and_grads(
        lambda m, b: DPOTrainer.compute_loss(trainer, m, b), trainer, batch
    )
    assert loss_p != pytest.approx(0.6931, abs=1e-4)  # the policy differs from the reference
    torch.testing.assert_close(loss_s, loss_p, rtol=1e-4, atol=1e-5)
    assert grads_p and grads_s.keys() == grads_p.keys()
    for name in grads_p:
        torch.testing.assert_close(grads_s[name], grads_p[name], rtol=1e-3, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in grads_s.values())


def test_prompt_tokens_run_once(tiny_model_dir, tmp_path):
    trainer = _trainer(tiny_model_dir, tmp_path, lora=True)
    batch = _batch(trainer)
    seen: list[int] = []
    embed = _backbone(trainer.model).embed_tokens
    handle = embed.register_forward_hook(lambda m, i, o: seen.append(i[0].numel()))
    try:
        DPOTrainer.compute_ref_log_probs(trainer, trainer.model, batch)
        plain = sum(seen)
        seen.clear()
        trainer.compute_ref_log_probs(trainer.model, batch)
        shared = sum(seen)
    finally:
        handle.remove()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert plain == ids.numel()  # every row, padding included
    lengths = mask.sum(1).tolist()
    for i in range(2):  # each pair: the common prefix once, then both continuations
        a, b = ids[i, : lengths[i]], ids[i + 2, : lengths[i + 2]]
        assert a[:5].tolist() == b[:5].tolist()
    assert shared < plain - 2 * 5  # the prompts were not run twice
    assert shared <= sum(lengths)


def test_patch_is_removed_and_odd_batches_fall_back(tiny_model_dir, tmp_path):
    trainer = _trainer(tiny_model_dir, tmp_path, lora=False)
    backbone = _backbone(trainer.model)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    expected = backbone(input_ids=ids).last_hidden_state
    with shared_prompt_forward(trainer.model, trainer.model):  # the same model twice: patched once
        assert "forward" in backbone.__dict__
        got = backbone(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert "forward" not in backbone.__dict__
    torch.testing.assert_close(got, expected)


def test_compact_head_scores_only_completion_positions(tiny_model_dir, tmp_path, monkeypatch):
    """The LM head on labelled positions only: the same loss and gradients as on every
    position, and the head sees only the completion tokens' hidden states."""
    from trl.trainer import utils

    trainer = _trainer(tiny_model_dir, tmp_path, lora=True)
    batch = _batch(trainer)
    rows: list[int] = []
    apply = utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(utils._ChunkedLogProbFunction, "apply",
                        lambda h, *a: rows.append(h.shape[0]) or apply(h, *a))  # fmt: skip
    plain = lambda m, b: DPOTrainer.compute_loss(trainer, m, b)  # noqa: E731
    loss_full, grads_full = _loss_and_grads(plain, trainer, batch)
    with compact_lm_head():
        loss_compact, grads_compact = _loss_and_grads(plain, trainer, batch)
    ids = batch["input_ids"]
    full, scored = ids.shape[0] * (ids.shape[1] - 1), int((batch["completion_mask"][:, 1:]).sum())
    assert rows == [full, full, scored, scored]  # policy and reference passes, each way
    assert scored < full / 2
    torch.testing.assert_close(loss_compact, loss_full, rtol=1e-5, atol=1e-6)
    assert grads_full.keys() == grads_compact.keys()
    for name in grads_full:
        torch.testing.assert_close(grads_compact[name], grads_full[name], rtol=1e-4, atol=1e-7)


def test_bf16_autocast_close_to_fp32_and_keeps_fp32_weights(tiny_model_dir, tmp_path):
    """precision bf16 on CPU: matrix products in bfloat16 under autocast; loss and gradients
    within bf16 rounding of fp32; LoRA weights and their gradients stay float32."""
    results = {}
    for precision in ("fp32", "bf16"):
        trainer = _trainer(tiny_model_dir, tmp_path / precision, lora=True, precision=precision)
        assert trainer.args.bf16 == (precision == "bf16")
        batch = _batch(trainer)
        # as Trainer.train does: accelerate wraps the forward in autocast for bf16
        model = trainer.accelerator.prepare_model(trainer.model)
        model.zero_grad()
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train otherwise
        loss = trainer.training_step(model, batch)
        grads = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        assert all(g.dtype == torch.float32 for g in grads.values())
        results[precision] = loss, grads
    (loss32, g32), (loss16, g16) = results["fp32"], results["bf16"]
    assert loss32 != pytest.approx(0.6931, abs=1e-4)
    # tiny random weights round coarsely in bf16 (measured here: loss 0.800 vs 0.779, gradient
    # cosine 0.994); the check on SmolLM2 and real pairs is bench/dpo_precision.py
    assert abs(loss16 - loss32) < 0.05
    flat32 = torch.cat([g32[n].flatten() for n in sorted(g32)])
    flat16 = torch.cat([g16[n].flatten() for n in sorted(g32)])
    assert torch.nn.functional.cosine_similarity(flat16, flat32, dim=0) > 0.98
    assert (flat16 - flat32).norm() / flat32.norm() < 0.2
    assert not torch.equal(flat16, flat32)  # bf16 really ran
