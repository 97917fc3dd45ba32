"""The run config's ``launch`` section: how a run spreads over processes and machines.

    launch: {num_processes: 8, config_file: zero3, sample_workers: 8}
    srjudge run configs/paper.yaml launch.num_processes=8 launch.config_file=zero3

``srjudge.loop.launch`` runs the training stages under ``accelerate launch`` from it, and the
sample and eval stages split their inputs over ``sample_workers`` (``srjudge.judging.shards``).
Every field is documented where it is declared; docs/SCALING.md has the commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srjudge.training.settings import Problem, raise_problems, range_problems


@dataclass
class LaunchConfig:
    """How a run spreads over processes (``srjudge.loop.launch``; docs/SCALING.md). Results
    do not depend on it: training keeps each stage's global batch, and sampling gives the same
    judgments for any number of workers. Without this section everything runs in-process."""

    num_processes: int = 1
    """Training processes over all machines: each training stage runs as
    ``accelerate launch --num_processes N -m srjudge.cli sft|dpo ...``. Each process gets the
    stage's settings with the batch split so that the global batch stays the configured one
    (``SFTSettings.per_process``)."""
    config_file: str | None = None
    """An accelerate config file, or the name of one shipped in ``configs/accelerate/``:
    ``ddp``, ``fsdp``, ``zero2``, ``zero3`` (docs/SCALING.md says when to use each); None =
    plain data parallel (DDP: NCCL on GPUs, gloo on CPU)."""
    num_machines: int = 1
    """Machines taking part; each runs ``srjudge run`` with its own ``machine_rank``."""
    machine_rank: int = 0
    """This machine: 0 runs the loop; the others follow its training stages (shared run folder)."""
    main_process_ip: str | None = None
    """Address of machine 0 (needed with several machines)."""
    main_process_port: int | None = None
    """Rendezvous port; None = a free port on one machine, 29500 with several."""
    sample_workers: int = 1
    """Worker processes that split the sample and eval stages' inputs, each with its own
    engine; the merged judgments are those of one worker."""
    devices_per_worker: int = 1
    """GPUs each sampling worker sees (worker w: devices w*k .. w*k+k-1); more than 1 for an
    engine that spans several, e.g. vLLM with ``tensor_parallel_size``."""
    engine_options: dict[str, Any] = field(default_factory=dict)
    """Options for each worker's sampling backend (``load_backend(backend, model, **these)``),
    e.g. ``{tensor_parallel_size: 4, gpu_memory_utilization: 0.85}`` for vLLM."""

    def __post_init__(self) -> None:
        problems = self.field_problems()
        raise_problems(problems or self._contradictions())
        if self.config_file is not None:
            self.config_file = accelerate_config(self.config_file)

    def field_problems(self) -> list[Problem]:
        at_least_1 = (1, None)
        problems = range_problems(self, {"num_processes": at_least_1, "num_machines": at_least_1,
                                         "sample_workers": at_least_1,
                                         "devices_per_worker": at_least_1,
                                         "machine_rank": (0, None)})  # fmt: skip
        if self.config_file is not None and not _is_accelerate_config(self.config_file):
            problems.append(("config_file", f"no such file {self.config_file!r} (nor a shipped "
                             f"name: {', '.join(ACCELERATE_CONFIGS)})"))  # fmt: skip
        return problems

    def _contradictions(self) -> list[Problem]:
        out: list[Problem] = []
        if self.num_processes % self.num_machines:
            out.append(("num_processes", "must be a multiple of launch.num_machines"))
        if self.machine_rank >= self.num_machines:
            out.append(("machine_rank", "must be below launch.num_machines"))
        if self.num_machines > 1 and not self.main_process_ip:
            out.append(("main_process_ip", "is needed with several machines"))
        return out


ACCELERATE_CONFIGS = ("ddp", "fsdp", "zero2", "zero3")
"""The accelerate configs shipped in ``configs/accelerate/``."""


def _is_accelerate_config(name_or_path: str) -> bool:
    return name_or_path in ACCELERATE_CONFIGS or Path(name_or_path).is_file()


def accelerate_config(name_or_path: str) -> str:
    """A shipped config's path for its name, else the file given."""
    if name_or_path in ACCELERATE_CONFIGS:
        return str(Path(__file__).parents[1] / "configs" / "accelerate" / f"{name_or_path}.yaml")
    return name_or_path


def batch_problems(cfg: Any, processes: int) -> list[Problem]:
    """A problem for each training stage of run config ``cfg`` whose global batch does not
    split over ``processes`` training processes (``SFTSettings.per_process``)."""
    stages = {"sft_pointwise": cfg.sft_pointwise, "sft_pairwise": cfg.sft_pairwise}
    settings = {f"{k}.settings": v.settings for k, v in stages.items() if v.enabled}
    for i, it in enumerate(cfg.iterations):
        settings[f"iterations.{i}.{it.method}"] = it.dpo if it.method == "dpo" else it.sft
    out: list[Problem] = []
    for name, stage_settings in settings.items():
        try:
            stage_settings.per_process(processes)
        except ValueError as e:
            out.append((None, f"launch.num_processes with {name}: {e}"))
    return out
