"""Training pieces that matter under several processes, checked in one: ranks that disagree on
their inputs stop, a checkpoint cut short by a kill is not resumed from, the rows repeated
to fill the last step are counted, and a separate DPO reference is freed once its log-probs
are precomputed without reaching into accelerate's internals."""

from __future__ import annotations

import gc
import weakref

import pytest
from transformers import TrainerCallback

from srjudge.records import Message, PreferencePair
from srjudge.training import distributed
from srjudge.training.common import last_complete_checkpoint, repeated_rows
from srjudge.training.dpo import run_dpo
from srjudge.training.settings import DPOSettings


def test_ranks_that_disagree_stop(monkeypatch):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "gather_object", lambda xs: ["abc", "abd"])
    with pytest.raises(RuntimeError, match="disagree on the inputs.*rank 0: abc, rank 1: abd"):
        distributed.agree("abc", "the inputs")
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda xs: ["abc", "abc"])
    distributed.agree("abc", "the inputs")


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    assert last_complete_checkpoint(tmp_path) is None
    for step, complete in [(2, True), (3, True), (4, False), (10, False)]:
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-3"


@pytest.mark.parametrize(
    "rows, batch, processes, repeated",
    [(5, 1, 2, 1), (5, 2, 2, 3), (4, 1, 2, 0), (8, 2, 2, 0), (3, 1, 4, 1), (7, 3, 1, 0)],
)
def test_rows_repeated_to_fill_the_last_step(rows, batch, processes, repeated):
    assert repeated_rows(rows, batch, processes) == repeated


class WatchReference(TrainerCallback):
    """Whether the reference model object is still alive when the training loop begins."""

    def __init__(self, ref: weakref.ref):
        self.ref = ref
        self.alive_at_start: bool | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        gc.collect()
        self.alive_at_start = self.ref() is not None


def test_separate_reference_is_freed_once_precomputed(tmp_path, tiny_model_dir, monkeypatch):
    import srjudge.training.dpo as dpo

    refs: list[weakref.ref] = []
    load = dpo.load_for_training

    def tracked(path):
        model, tokenizer = load(path)
        refs.append(weakref.ref(model))
        return model, tokenizer

    monkeypatch.setattr(dpo, "load_for_training", tracked)
    prompt = [Message("system", "You judge."), Message("user", "2+2 = 4. Score it.")]
    pairs = [PreferencePair(f"e{i}", prompt, "Right. [RESULT] 5", "Wrong. [RESULT] 1", 5, 1,
                            "correct_answer", "margin 4") for i in range(2)]  # fmt: skip
    watch = WatchReference(lambda: refs[1]() if len(refs) > 1 else None)
    settings = DPOSettings(max_steps=1, gradient_accumulation_steps=1, max_length=256,
                           disable_tqdm=True)  # fmt: skip
    other = tmp_path / "other"
    load(tiny_model_dir)[0].save_pretrained(other)  # a separate reference: another directory
    load(tiny_model_dir)[1].save_pretrained(other)
    result = run_dpo(tiny_model_dir, pairs, tmp_path / "out", settings, ref_model=str(other),
                     callbacks=[watch])  # fmt: skip
    assert len(refs) == 2  # policy, then the reference
    assert watch.alive_at_start is False
    assert result.counts["rows"] == 2


@pytest.mark.parametrize(
    "engine, share, expected",
    [("NO", True, "SharedPromptDPOTrainer"), ("MULTI_CPU", True, "SharedPromptDPOTrainer"),
     ("FSDP", True, "DPOTrainer (share_prompt off under FSDP)"),
     ("DEEPSPEED", True, "DPOTrainer (share_prompt off under DEEPSPEED)"),
     ("NO", False, "DPOTrainer (share_prompt off)")],
)  # fmt: skip
def test_shared_prompt_trainer_only_where_it_is_tested(engine, share, expected, caplog):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from srjudge.training.dpo import _trainer_class

    config = SimpleNamespace(distributed_state=SimpleNamespace(
        distributed_type=DistributedType(engine)))  # fmt: skip
    cls, note = _trainer_class(DPOSettings(share_prompt=share), config)
    assert note == expected and cls.__name__ == expected.split()[0]
    assert ("share_prompt: off under" in caplog.text) == (engine in ("FSDP", "DEEPSPEED"))
