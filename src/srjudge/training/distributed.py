"""Training as several processes (``accelerate launch`` / ``torchrun``): who writes, and the
checks that every rank trains on the same inputs.

Every rank runs the same ``run_sft`` / ``run_dpo`` call on the same inputs; the trainer's
seeded sampler then deals each rank its share of every global batch (accelerate shards
batches, so N processes x batch b see, per optimizer step, the rows one process x batch N*b
sees). What this module adds:

* ``Ranks``: this process's index and the process count, read from the ``TrainingArguments``
  (which set up the distributed state: gloo on CPU with ``ACCELERATE_USE_CPU=1``, NCCL on GPUs);
* ``agree``: every rank must hold the same value (the inputs fingerprint, the checkpoint to
  resume from), else the run stops before training: ranks that read different data would
  silently train on a mix;
* ``barrier``: wait for every rank (the main process writes, the others then read);
* ``sharded_engine``: FSDP or DeepSpeed, where parameters are split across ranks (the
  shared-prompt DPO forward is not used there; see ``srjudge.training.dpo``).

Only the main process (rank 0) writes the model, ``train_log.jsonl``, provenance and the
resume marker (``srjudge.training.common``). The one per-rank file is the trainer's own
``rng_state_<rank>.pth`` inside each checkpoint, which an exact resume needs.

    torchrun --nproc_per_node 2 -m srjudge.cli sft ...          # CPU: with ACCELERATE_USE_CPU=1
    accelerate launch --config_file configs/accelerate/ddp.yaml -m srjudge.cli dpo ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    index: int
    """This process's global rank (0 = the main process)."""
    count: int
    """Processes training together (1 without a launcher)."""

    @property
    def main(self) -> bool:
        return self.index == 0


def ranks_of(args: Any) -> Ranks:
    """The ranks of a ``TrainingArguments`` (setting up its distributed state if needed)."""
    args.device  # noqa: B018 -- the property initialises the process group on first use
    return Ranks(args.process_index, args.world_size)


def agree(value: str, what: str) -> None:
    """Raise on every rank unless all ranks hold the same ``value``."""
    from accelerate.utils import gather_object

    values = gather_object([value])
    if len(set(values)) > 1:
        by_rank = ", ".join(f"rank {i}: {v}" for i, v in enumerate(values))
        raise RuntimeError(
            f"the training processes disagree on {what} ({by_rank}); every rank must read the "
            "same model, data and settings (same files, same srjudge version)"
        )


def barrier() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def sharded_engine(args: Any) -> str | None:
    """``"FSDP"`` or ``"DEEPSPEED"`` when parameters are split across ranks, else None."""
    state = args.distributed_state
    kind = state.distributed_type.value if state is not None else "NO"
    return kind if kind in ("FSDP", "DEEPSPEED") else None
