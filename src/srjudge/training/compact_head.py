"""TRL's fused LM head on completion positions only, on CPU too (SFT and DPO).

TRL's trainers score tokens through a fused LM head (``trl.trainer.utils.add_fused_lm_head``)
that never builds the ``(rows, length, vocab)`` logits. On CUDA/XPU it projects only the
positions that have a label; on other devices it projects every position, prompt included,
through the 49k-vocabulary head and masks afterwards. For a judge (a ~1000-token prompt, a
~100-250-token judgment, loss on the judgment only) that is ~90% of the head's work wasted.
``compact_lm_head`` makes TRL take its labelled-positions path on CPU as well: the same
per-token log-probs and gradients (pinned by ``tests/test_shared_prompt.py`` and
``tests/test_compact_head.py``).

    with compact_lm_head():
        trainer.compute_loss(model, batch)
    CompactHeadSFTTrainer(...)  # SFTTrainer whose loss runs under compact_lm_head
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


class CompactHeadSFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` with the LM head on completion (labelled) positions only."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with compact_lm_head():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
