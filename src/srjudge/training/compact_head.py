"""TRL's fused LM head on completion positions only, on CPU too (SFT and DPO).

TRL's trainers score tokens through a fused LM head (``trl.trainer.utils.add_fused_lm_head``)
that never builds the ``(rows, length, vocab)`` logits. On CUDA/XPU it projects only the
positions that have a label; on other devices it projects every position, prompt included,
through the 49k-vocabulary head and masks afterwards. For a judge (a ~1000-token prompt, a
~100-250-token judgment, loss on the judgment only) that is ~90% of the head's work wasted.
``compact_lm_head`` makes TRL take its labelled-positions path on CPU as well: the same
per-token log-probs and gradients (pinned by ``tests/test_shared_prompt.py`` and
``tests/test_compact_head.py``).

Under bf16 autocast TRL's DPO and SFT trainers also run that head in bf16: logits with an
8-bit mantissa, whose rounding adds up over a judgment's ~200 log-probs (DPO compares such
sums). ``fp32_lm_head`` re-adds TRL's head with its own ``cast_lm_head_to_fp32`` switch
(which only its GRPO trainer exposes): the backbone stays in bf16, the head (completion
positions only, a few % of the FLOPs) runs in float32.

    with compact_lm_head():
        trainer.compute_loss(model, batch)
    CompactHeadSFTTrainer(...)  # SFTTrainer whose loss runs under compact_lm_head
    fp32_lm_head(model, outputs=("log_probs",))  # after TRL added its fused head
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from trl import SFTTrainer


@contextlib.contextmanager
def compact_lm_head() -> Iterator[None]:
    """Within the block, TRL's fused LM head projects only positions with a label.

    TRL chooses between every position and the labelled ones with
    ``trl.trainer.utils._use_triton(device)`` (labelled ones on CUDA/XPU); its CPU tiles, in
    torch, take either. Without that name (another TRL), nothing changes.
    """
    from trl.trainer import utils

    original = getattr(utils, "_use_triton", None)
    if original is None:
        yield
        return
    utils._use_triton = lambda device: True
    try:
        yield
    finally:
        utils._use_triton = original


def fp32_lm_head(model: Any, outputs: tuple[str, ...]) -> bool:
    """Re-add TRL's fused LM head to ``model`` (where TRL's trainer added it) with the
    projection in float32, outside autocast; ``outputs`` as TRL's trainer asked for them.
    Returns False, changing nothing, when ``model`` has no such head (another TRL)."""
    from trl.trainer.utils import add_fused_lm_head

    fused = getattr(vars(model).get("forward"), "__func__", None)
    if getattr(getattr(fused, "__code__", None), "co_name", None) != "_fused_forward":
        return False
    del model.forward  # the class's forward again, which add_fused_lm_head wraps
    add_fused_lm_head(model, cast_lm_head_to_fp32=True, outputs=outputs)
    return True


def head_model(model: Any) -> Any:
    """The model TRL's trainers put the fused head on: the one inside a PEFT wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class CompactHeadSFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` with the LM head on completion (labelled) positions only, and in
    float32 under bf16 autocast."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.args.bf16:
            fp32_lm_head(head_model(self.model), outputs=("log_probs", "entropy", "is_top1"))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with compact_lm_head():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
