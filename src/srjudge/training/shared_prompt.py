"""DPO forward passes that run each pair's prompt once instead of twice.

TRL's ``DPOTrainer`` scores a pair as two rows, ``[prompt + chosen]`` and
``[prompt + rejected]``, so the prompt goes through the model twice: in the reference pass
and again in the policy's forward and backward. A judge prompt (conversation, response,
rubric: ~900 tokens) is most of each row, and a rationale only ~100-250 tokens, so about
half of DPO's compute is the same prompt repeated.

``SharedPromptDPOTrainer`` runs the backbone over each pair's common prefix once, expands
that prefix's KV cache to two rows and runs only the two continuations on top of it. The
hidden states it returns are those of the plain two-row forward (same weights, same
positions, same masks; equal up to float rounding, pinned by a test), so TRL's own fused
LM head, loss and metrics run unchanged on them. Gradients flow through the shared prefix
and its cache, so it trains the same function.

Its passes also run TRL's fused LM head on completion positions only, on CPU too
(``srjudge.training.compact_head``).

It falls back to the plain forward whenever the batch does not have the layout it relies
on (chosen rows then rejected rows, each row left-aligned, no gradient checkpointing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from trl import DPOTrainer

from srjudge.training.compact_head import compact_lm_head, fp32_lm_head, head_model

# Backbone kwargs that do not change the computation; anything else falls back to the
# plain forward rather than being silently dropped.
_HARMLESS_KWARGS = {"use_cache", "return_dict", "output_router_logits"}


def _backbone(model: Any) -> Any:
    """The decoder stack that TRL's fused head calls (``base_model`` of the causal LM)."""
    return head_model(model).base_model


def _row_length(mask_row: torch.Tensor) -> int | None:
    """Number of real tokens when the row is ``1..1 0..0`` (left-aligned), else None."""
    n = int(mask_row.sum())
    return n if bool(mask_row[:n].all()) else None


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0]) if len(differ) else n


def _pair_hidden(forward: Any, ids: torch.Tensor, mask: torch.Tensor, rows: tuple[int, int]):
    """Hidden states ``[2, width, d]`` of two rows sharing a prompt, the prefix run once.

    Returns None when the rows share no usable prefix (the caller runs them plainly).
    """
    lengths = [_row_length(mask[r]) for r in rows]
    if None in lengths:
        return None
    n_a, n_b = lengths
    # keep at least one token per row after the prefix, so each suffix forward is non-empty
    k = min(_common_prefix(ids[rows[0], :n_a], ids[rows[1], :n_b]), n_a - 1, n_b - 1)
    if k < 1:
        return None
    width = max(n_a, n_b)
    prefix = forward(input_ids=ids[rows[0] : rows[0] + 1, :k], use_cache=True)
    cache = prefix.past_key_values
    cache.batch_repeat_interleave(2)
    pair = list(rows)
    suffix = forward(
        input_ids=ids[pair, k:width],
        attention_mask=mask[pair, :width],
        past_key_values=cache,
        use_cache=True,
    )
    return torch.cat([prefix.last_hidden_state.expand(2, -1, -1), suffix.last_hidden_state], 1)


def _shared_forward(original: Any) -> Any:
    from transformers.modeling_outputs import BaseModelOutputWithPast

    def forward(input_ids=None, attention_mask=None, **kwargs):
        extra = {k for k, v in kwargs.items() if v is not None and k not in _HARMLESS_KWARGS}
        if (
            extra
            or kwargs.get("output_router_logits")
            or input_ids is None
            or attention_mask is None
            or input_ids.shape[0] % 2
        ):
            return original(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        batch, length = input_ids.shape
        half = batch // 2
        hidden: list[torch.Tensor | None] = [None] * batch
        for i in range(half):  # row i is prompt + chosen, row i + half the same prompt + rejected
            rows = (i, i + half)
            h = _pair_hidden(original, input_ids, attention_mask, rows)
            if h is None:
                pair = list(rows)
                plain = original(input_ids=input_ids[pair], attention_mask=attention_mask[pair],
                                 use_cache=False)  # fmt: skip
                h = plain.last_hidden_state
            # positions past both rows' ends are padding: their labels are -100, never scored
            h = torch.nn.functional.pad(h, (0, 0, 0, length - h.shape[1]))
            hidden[rows[0]], hidden[rows[1]] = h[0], h[1]
        return BaseModelOutputWithPast(last_hidden_state=torch.stack(hidden))  # type: ignore[arg-type]

    return forward


def _checkpointing(model: Any) -> bool:
    # transformers 5 renamed is_gradient_checkpointing (deprecated) to is_activation_checkpointing
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name) or name in vars(model):
            return bool(getattr(model, name))
    return False


@contextlib.contextmanager
def shared_prompt_forward(*models: Any) -> Iterator[None]:
    """Within the block, the backbones of ``models`` (policy, reference) share prompts.

    Models with gradient checkpointing on are left alone: checkpointed layers drop the KV
    cache that the shared prefix needs.
    """
    patched: dict[int, tuple[Any, Any]] = {}  # id -> (backbone, its own forward attribute)
    try:
        for model in models:
            if model is None or _checkpointing(head_model(model)):
                continue
            backbone = _backbone(model)
            if id(backbone) in patched:  # the reference is the policy itself
                continue
            patched[id(backbone)] = (backbone, backbone.__dict__.get("forward"))
            backbone.forward = _shared_forward(backbone.forward)
        yield
    finally:
        for backbone, own in patched.values():
            if own is None:
                del backbone.forward  # the class's forward again
            else:
                backbone.forward = own


class SharedPromptDPOTrainer(DPOTrainer):
    """TRL's ``DPOTrainer`` whose policy and reference passes run each prompt once, with
    the LM head on completion positions only, and in float32 under bf16 autocast."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.args.bf16:
            # the fields TRL's DPOTrainer asks its fused head for (trl 1.16)
            outputs = ("log_probs", "entropy", "mean_logits", "is_top1")
            if self.use_weighting:
                outputs += ("log_sum_sq_probs",)
            fp32_lm_head(head_model(self.model), outputs=outputs)
            if self.ref_model is not None:
                fp32_lm_head(self.ref_model, outputs=("log_probs",))

    def _models(self, model: Any) -> tuple[Any, Any]:
        unwrap = self.accelerator.unwrap_model
        return unwrap(model), (unwrap(self.ref_model) if self.ref_model is not None else None)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with shared_prompt_forward(*self._models(model)), compact_lm_head():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def compute_ref_log_probs(self, model, inputs):
        with shared_prompt_forward(*self._models(model)), compact_lm_head():
            return super().compute_ref_log_probs(model, inputs)
