"""Training proves learning (TRL's test_dpo_trainer style) on the tiny random model.

Each training test snapshots the trainable parameters when training begins, trains 2 optimizer
steps at a high learning rate, and asserts that the loss was logged, every trainable parameter
changed, and the saved directory loads alone with plain transformers and generates.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from srjudge.records import Message, PairwiseExample, PointwiseExample, PreferencePair, Rubric
from srjudge.training.common import LOG_FILE, PROVENANCE_FILE
from srjudge.training.dpo import dpo_rows, run_dpo
from srjudge.training.settings import DPOSettings, SFTSettings
from srjudge.training.sft import run_sft, sft_rows

RUBRIC = Rubric("Is the answer correct?", ("wrong", "mostly wrong", "partly", "mostly", "right"))
FAST = {
    "max_steps": 2,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-2,
    "max_length": 512,
    "disable_tqdm": True,
}


def _pointwise(i: int, **kw) -> PointwiseExample:
    fields = {"gold_score": 4, "gold_rationale": "The sum is right."} | kw
    return PointwiseExample(
        f"p{i}", [Message("user", f"What is {i}+2?")], str(i + 2), RUBRIC, **fields
    )


def _pairwise(pref, rationale="Response 1 is right.") -> PairwiseExample:
    return PairwiseExample(
        "q", [Message("user", "2+2?")], "4", "5", RUBRIC, gold_preference=pref,
        gold_rationale=rationale,
    )  # fmt: skip


def _pairs(n: int = 2) -> list[PreferencePair]:
    prompt = [Message("system", "You are a judge."), Message("user", "Rate: 2+2 = 4. Score 1-5.")]
    return [
        PreferencePair(
            f"e{i}",
            prompt,
            "It is correct. [RESULT] 5",
            "It is wrong. [RESULT] 1",
            5,
            1,
            "correct_answer",
            "margin 4",
        )  # fmt: skip
        for i in range(n)
    ]


class Snapshot(TrainerCallback):
    """Trainable parameters at train begin and end (LoRA: the adapter weights)."""

    def __init__(self, fail_at_step: int | None = None):
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}
        self.batch = None
        self.fail_at_step = fail_at_step

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kw):
        self.before = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }
        self.batch = next(iter(train_dataloader))

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.fail_at_step:
            raise KeyboardInterrupt("simulated crash")

    def on_train_end(self, args, state, control, model=None, **kw):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def unchanged(self) -> list[str]:
        return [n for n, p in self.before.items() if torch.equal(p, self.after[n])]


def _loads_and_generates(path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer("Score:", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 3


def _weights(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(Path(path) / "model.safetensors")


# ---------------------------------------------------------------------------------------
# rows


def test_sft_rows_formats_and_skips():
    examples = [
        _pointwise(0, gold_score=3.5),  # mean of raters: rounds half up
        _pointwise(1, gold_score=None),
        _pointwise(2, gold_rationale="  "),
        _pairwise(2),
        _pairwise("tie"),
    ]
    rows = sft_rows(examples)
    assert [r["completion"] for r in rows] == [
        [{"role": "assistant", "content": "The sum is right. [RESULT] 4"}],
        [{"role": "assistant", "content": "Response 1 is right. [RESULT] 2"}],
    ]
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert "What is 0+2?" in rows[0]["prompt"][1]["content"]

    score_only = sft_rows(examples, score_only=True)
    assert [r["completion"][0]["content"] for r in score_only] == [
        "[RESULT] 4", "[RESULT] 4", "[RESULT] 2",
    ]  # fmt: skip


def test_dpo_rows():
    (row,) = dpo_rows(_pairs(1))
    assert row["prompt"][0] == {"role": "system", "content": "You are a judge."}
    assert row["chosen"] == [{"role": "assistant", "content": "It is correct. [RESULT] 5"}]
    assert row["rejected"] == [{"role": "assistant", "content": "It is wrong. [RESULT] 1"}]


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (SFTSettings, {"learning_rate": 0}, "learning_rate"),
        (SFTSettings, {"num_train_epochs": 0}, "num_train_epochs"),
        (SFTSettings, {"max_steps": 0}, "max_steps"),
        (SFTSettings, {"lora_dropout": 1.0}, "lora_dropout"),
        (DPOSettings, {"beta": 0}, "beta"),
        (DPOSettings, {"loss_type": "nope"}, "loss_type"),
        (DPOSettings, {"precision": "fp16"}, "precision"),
        (DPOSettings, {"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
    ],
)
def test_settings_reject_contradictions(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


# ---------------------------------------------------------------------------------------
# SFT


def test_sft_full_learns_masks_prompt_and_saves(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    examples = [_pointwise(0), _pointwise(1), _pairwise("tie")]
    snap = Snapshot()
    result = run_sft(tiny_model_dir, examples, tmp_path / "sft", SFTSettings(**FAST),
                     callbacks=[snap])  # fmt: skip

    assert result.counts == {"examples": 3, "rows": 2, "skipped_tie": 1}
    assert len(result.loss_history) == 2 and all(e["loss"] > 0 for e in result.loss_history)
    assert snap.before and not snap.unchanged()

    # completion-only loss: every prompt token is -100, the judgment is labelled
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    input_ids, labels = snap.batch["input_ids"][0], snap.batch["labels"][0]
    row = next(r for r in sft_rows(examples) if tokenizer.decode(input_ids).startswith(
        tokenizer.apply_chat_template(r["prompt"], tokenize=False)))  # fmt: skip
    n_prompt = len(tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True,
                                                 tokenize=True)["input_ids"])  # fmt: skip
    assert (labels[:n_prompt] == -100).all()
    assert torch.equal(labels[n_prompt:], input_ids[n_prompt:])
    assert tokenizer.decode(labels[n_prompt:]).startswith("The sum is right. [RESULT] 4")

    out = tmp_path / "sft"
    _loads_and_generates(out)
    prov = json.loads((out / PROVENANCE_FILE).read_text())
    assert prov["templates"][0]["id"] == "pointwise" and len(prov["templates"][0]["sha256"]) == 64
    assert prov["counts"] == result.counts and prov["seed"] == 0
    assert len((out / LOG_FILE).read_text().splitlines()) >= 2
    assert not (out / "checkpoints").exists()


def test_sft_lora_learns_and_merges(tiny_model_dir, tmp_path):
    snap = Snapshot()
    settings = SFTSettings(**FAST, lora=True, lora_target_modules=["q_proj", "v_proj"])
    run_sft(tiny_model_dir, [_pointwise(0)], tmp_path / "lora", settings, callbacks=[snap])

    assert snap.before and all("lora_" in n for n in snap.before)
    assert not snap.unchanged()
    merged, base = _weights(tmp_path / "lora"), _weights(tiny_model_dir)
    assert set(merged) == set(base)  # merged into plain weights, no adapter keys left
    for k in base:
        targeted = "q_proj" in k or "v_proj" in k
        assert torch.equal(merged[k], base[k]) != targeted, k
    _loads_and_generates(tmp_path / "lora")


def test_sft_resumes_from_checkpoint_after_crash(tiny_model_dir, tmp_path):
    settings = SFTSettings(**FAST, save_steps=1)
    out = tmp_path / "resume"
    with pytest.raises(KeyboardInterrupt):
        run_sft(tiny_model_dir, [_pointwise(0)], out, settings,
                callbacks=[Snapshot(fail_at_step=2)])  # fmt: skip
    assert (out / "checkpoints" / "checkpoint-1").is_dir()
    assert not (out / PROVENANCE_FILE).exists()

    with pytest.raises(RuntimeError, match="different inputs"):
        run_sft(tiny_model_dir, [_pointwise(5)], out, settings)

    result = run_sft(tiny_model_dir, [_pointwise(0)], out, settings)
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-1")
    assert [e["step"] for e in result.loss_history] == [1, 2]
    assert not (out / "checkpoints").exists()


# ---------------------------------------------------------------------------------------
# DPO


def test_dpo_full_learns_with_separate_precomputed_reference(tiny_model_dir, tmp_path):
    ref = shutil.copytree(tiny_model_dir, tmp_path / "ref")  # a distinct directory
    snap = Snapshot()
    settings = DPOSettings(**FAST, precompute_ref_log_probs=True)
    result = run_dpo(tiny_model_dir, _pairs(), tmp_path / "dpo", settings, ref_model=str(ref),
                     callbacks=[snap])  # fmt: skip

    assert result.counts == {"pairs": 2, "rows": 2}
    assert len(result.loss_history) == 2
    assert snap.before and not snap.unchanged()
    prov = json.loads((tmp_path / "dpo" / PROVENANCE_FILE).read_text())
    assert prov["reference"] == "separate model" and prov["ref_model_path"] == str(ref)
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert prov["precision"] == ("bf16" if gpu_bf16 else "fp32")  # settings' "auto"
    _loads_and_generates(tmp_path / "dpo")


def test_dpo_lora_learns_against_adapter_disabled_base(tiny_model_dir, tmp_path):
    snap = Snapshot()
    settings = DPOSettings(**FAST, lora=True, precompute_ref_log_probs=False, precision="bf16")
    result = run_dpo(tiny_model_dir, _pairs(), tmp_path / "dpo", settings,
                     ref_model=tiny_model_dir, callbacks=[snap])  # fmt: skip

    assert result.loss_history[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2 at start
    assert snap.before and all("lora_" in n for n in snap.before)
    assert not snap.unchanged()
    prov = json.loads((tmp_path / "dpo" / PROVENANCE_FILE).read_text())
    assert prov["reference"].startswith("adapter-disabled base")
    assert prov["precision"] == "bf16" and prov["settings"]["precision"] == "bf16"
    assert {w.dtype for w in _weights(tmp_path / "dpo").values()} == {torch.float32}
    assert len(prov["system_prompt_sha256"]) == 1
    _loads_and_generates(tmp_path / "dpo")


def test_dpo_skips_pairs_whose_prompt_fills_max_length(tiny_model_dir, tmp_path):
    long_prompt = [Message("user", "word " * 400)]
    pairs = [*_pairs(1), PreferencePair("long", long_prompt, "a", "b", 5, 1, "s", "r")]
    settings = DPOSettings(**(FAST | {"max_length": 128, "max_steps": 1}))
    result = run_dpo(tiny_model_dir, pairs, tmp_path / "dpo", settings, ref_model=None)
    assert result.counts == {"pairs": 2, "rows": 1, "skipped_prompt_too_long": 1}
