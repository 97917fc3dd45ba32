"""One typed config per run: YAML -> nested dataclasses, dotted overrides applied last.

    cfg = load_config("configs/demo.yaml", ["iterations.0.dpo.beta=0.05", "seed=1"])

Every field is documented where it is declared. Unknown keys and wrong types are rejected
(dacite, strict), and contradictions between fields are rejected in ``__post_init__`` before
any model is loaded. The resolved config is written into the run folder by ``loop.rundir``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import dacite
import yaml

from srjudge.training.curate import STRATEGIES, CurationConfig
from srjudge.training.settings import DPOSettings, SFTSettings


@dataclass
class DataSource:
    format: str
    """Loader name in ``srjudge.data.LOADERS`` (e.g. ``mt-bench``, ``prometheus-feedback``)."""
    path: str
    """A file, ``bundled:<name>`` for a slice shipped with srjudge, or a Hugging Face dataset id."""
    limit: int | None = None
    """Keep only the first ``limit`` examples of this source (after loading)."""


@dataclass
class DataConfig:
    pointwise: list[DataSource] = field(default_factory=list)
    """Pointwise training sources (SFT uses gold score and rationale; curation the score)."""
    pairwise: list[DataSource] = field(default_factory=list)
    """Pairwise training sources (gold preference + rationale)."""
    derive_pairwise: bool = False
    """Also build pairwise examples from pairs of pointwise responses to the same question
    whose gold scores differ by at least ``derive_min_gap`` (see ``data.derive_pairwise``)."""
    derive_min_gap: float = 1.0
    heldout_fraction: float = 0.0
    """Fraction of pointwise *questions* held out of training for in-domain evaluation."""
    max_prompt_chars: int | None = None
    """Drop training examples whose rendered judge prompt is longer than this (counted in the
    data stage). Keeps CPU-sized runs fast; None keeps everything."""

    def __post_init__(self) -> None:
        if not self.pointwise and not self.pairwise:
            raise ValueError("data: give at least one pointwise or pairwise source")
        if self.derive_pairwise and not self.pointwise:
            raise ValueError("data.derive_pairwise needs pointwise sources")
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError("data.heldout_fraction must be in [0, 1)")


@dataclass
class SFTStageConfig:
    enabled: bool = True
    """False skips this seed judge (e.g. the 'DPO without SFT' ablation)."""
    max_examples: int | None = None
    """Cap on training examples (sampled with the run seed)."""
    score_only: bool = False
    """Train on '[RESULT] n' completions without a rationale (the score-only ablation)."""
    settings: SFTSettings = field(default_factory=SFTSettings)


@dataclass
class MergeConfig:
    weight: float = 0.5
    """J_SFT = weight * pointwise judge + (1 - weight) * pairwise judge."""

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1:
            raise ValueError("merge.weight must be in [0, 1]")


@dataclass
class SampleConfig:
    fraction: float | None = None
    """Share of training inputs sampled this iteration (the paper's p_t); or use ``count``."""
    count: int | None = None
    """Number of training inputs sampled this iteration; exclusive with ``fraction``."""
    modes: list[Literal["pointwise", "pairwise"]] = field(default_factory=lambda: ["pointwise"])
    """Which kinds of training input are self-rationalized."""
    n: int = 10
    """Judgments per input (paper: 10)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    max_retries: int = 2
    """Re-samples of an unparseable judgment before it is recorded as a failure."""

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("sample: give exactly one of 'fraction' or 'count'")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError("sample.fraction must be in (0, 1]")
        if self.count is not None and self.count < 1:
            raise ValueError("sample.count must be >= 1")
        if not self.modes:
            raise ValueError("sample.modes must name at least one mode")


@dataclass
class IterationConfig:
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(fraction=0.1))
    curation: CurationConfig = field(default_factory=CurationConfig)
    method: Literal["dpo", "best_of_n_sft"] = "dpo"
    """``dpo``: DPO on curated pairs (the method). ``best_of_n_sft``: the Best-of-N baseline,
    SFT on the judgments whose verdict matches the gold."""
    dpo: DPOSettings = field(default_factory=DPOSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    """Used by ``best_of_n_sft`` only."""
    meta_judge: str | None = None
    """Model for the meta-judge strategies; None = the current judge J_t rates itself."""

    def __post_init__(self) -> None:
        if self.method == "best_of_n_sft" and self.curation.strategy != "correct_answer":
            raise ValueError(
                "method best_of_n_sft selects judgments by the gold answer: "
                "use curation.strategy: correct_answer"
            )


@dataclass
class EvalConfig:
    benchmarks: list[str] = field(default_factory=list)
    """Names in ``srjudge.evaluation.benchmarks.BENCHMARKS``; 'in-domain' uses the held-out
    split."""
    models: list[Literal["seed", "sft", "iterations", "final"]] = field(
        default_factory=lambda: ["seed", "sft", "iterations"]
    )
    """Which models of the run to evaluate."""
    limit: int | None = None
    """Items per benchmark (stratified sample); None = all."""
    samples: int = 1
    """Judgments per item; >1 reports the majority (self-consistency)."""
    max_new_tokens: int = 512
    max_retries: int = 1
    """Re-samples of an unparseable judgment before it counts as a parse failure."""
    score_only: bool = False
    """Judge with the score-only prompts (for judges trained without rationales)."""


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
        for name in ("num_processes", "num_machines", "sample_workers", "devices_per_worker"):
            if getattr(self, name) < 1:
                raise ValueError(f"launch.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_processes % self.num_machines:
            raise ValueError("launch.num_processes must be a multiple of launch.num_machines")
        if not 0 <= self.machine_rank < self.num_machines:
            raise ValueError("launch.machine_rank must be in [0, num_machines)")
        if self.num_machines > 1 and not self.main_process_ip:
            raise ValueError("launch.main_process_ip is needed with several machines")
        if self.config_file is not None:
            self.config_file = accelerate_config(self.config_file)


ACCELERATE_CONFIGS = ("ddp", "fsdp", "zero2", "zero3")
"""The accelerate configs shipped in ``configs/accelerate/``."""


def accelerate_config(name_or_path: str) -> str:
    """A shipped config's path for its name, else the file given, which must exist."""
    if name_or_path in ACCELERATE_CONFIGS:
        return str(Path(__file__).parents[1] / "configs" / "accelerate" / f"{name_or_path}.yaml")
    if not Path(name_or_path).is_file():
        raise ValueError(
            f"launch.config_file: no such file {name_or_path!r} (or a shipped name: "
            f"{', '.join(ACCELERATE_CONFIGS)})"
        )
    return name_or_path


@dataclass
class RunConfig:
    name: str
    """Shown in reports; the run folder defaults to runs/<name>."""
    data: DataConfig
    model: str = "smollm2-135m"
    """Seed model: an alias (``srjudge models``), a local directory or a hub id."""
    backend: Literal["transformers", "vllm", "openai", "mock"] = "transformers"
    """Sampling backend for self-rationalization and evaluation."""
    run_dir: str | None = None
    """Where stages write; default runs/<name>."""
    seed: int = 0
    """Seeds data sampling, generation and training."""
    reference: Literal["previous", "sft"] = "previous"
    """DPO reference model: the policy being trained from (J_t, the paper's iterative DPO)
    or always J_SFT."""
    sft_pointwise: SFTStageConfig = field(default_factory=SFTStageConfig)
    sft_pairwise: SFTStageConfig = field(default_factory=SFTStageConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    iterations: list[IterationConfig] = field(default_factory=list)
    """Self-rationalization rounds; the paper runs two (5000 then 500 samples)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: bool = True
    """Write report.md / report.html at the end."""
    launch: LaunchConfig | None = None
    """Several processes or machines (see ``LaunchConfig``); None = one process."""

    def __post_init__(self) -> None:
        if self.sft_pointwise.enabled and not self.data.pointwise:
            raise ValueError("sft_pointwise is enabled but data.pointwise is empty")
        has_pairwise = bool(self.data.pairwise) or self.data.derive_pairwise
        if self.sft_pairwise.enabled and not has_pairwise:
            raise ValueError(
                "sft_pairwise is enabled but there is no pairwise data "
                "(data.pairwise or data.derive_pairwise)"
            )
        if "in-domain" in self.eval.benchmarks and self.data.heldout_fraction == 0:
            raise ValueError("eval benchmark 'in-domain' needs data.heldout_fraction > 0")
        for i, it in enumerate(self.iterations):
            if "pairwise" in it.sample.modes and not has_pairwise:
                raise ValueError(f"iterations[{i}] samples pairwise inputs but there are none")
            if it.curation.strategy not in STRATEGIES:
                raise ValueError(
                    f"iterations[{i}].curation.strategy: unknown "
                    f"{it.curation.strategy!r}; choose from {sorted(STRATEGIES)}"
                )

        if self.launch is not None:
            self._check_launch(self.launch.num_processes)

    def _check_launch(self, processes: int) -> None:
        """Every training stage's global batch must split over the training processes."""
        stages = {"sft_pointwise": self.sft_pointwise, "sft_pairwise": self.sft_pairwise}
        settings = {f"{k}.settings": v.settings for k, v in stages.items() if v.enabled}
        for i, it in enumerate(self.iterations):
            if it.method == "dpo":
                settings[f"iterations[{i}].dpo"] = it.dpo
            else:
                settings[f"iterations[{i}].sft"] = it.sft
        for name, stage_settings in settings.items():
            try:
                stage_settings.per_process(processes)
            except ValueError as e:
                raise ValueError(f"launch.num_processes with {name}: {e}") from e

    @property
    def directory(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")


# ---------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """YAML semantics for override values: ``0.05`` -> float, ``true`` -> bool, ``[a, b]``."""
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides; list items are addressed by index (``iterations.0.n``).

    >>> apply_overrides({"a": {"b": 1}, "l": [{"x": 1}]}, ["a.b=2", "l.0.x=3", "c=[1, 2]"])
    {'a': {'b': 2}, 'l': [{'x': 3}], 'c': [1, 2]}
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        *parents, last = key.strip().split(".")
        node: Any = out
        for p in parents:
            if isinstance(node, list):
                node = node[int(p)]
            else:
                node = node.setdefault(p, {})
        if isinstance(node, list):
            node[int(last)] = _parse_value(value)
        else:
            node[last] = _parse_value(value)
    return out


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    try:
        return dacite.from_dict(RunConfig, raw, config=dacite.Config(strict=True, cast=[tuple]))
    except dacite.DaciteError as e:
        raise ValueError(f"config: {e}") from e


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merge key by key, anything else (lists too) replaces.

    >>> deep_merge({"a": {"x": 1, "y": 2}, "l": [1]}, {"a": {"y": 3}, "l": [2]})
    {'a': {'x': 1, 'y': 3}, 'l': [2]}
    """
    out = dict(base)
    for k, v in top.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def read_config_dict(path: str | Path) -> dict[str, Any]:
    """Read a YAML config; a top-level ``base: other.yaml`` (relative to this file) is read
    first and this file's keys are merged over it, so variants state only what differs."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    base = raw.pop("base", None)
    return deep_merge(read_config_dict(path.parent / base), raw) if base else raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    raw = read_config_dict(path)
    try:
        return config_from_dict(apply_overrides(raw, overrides or []))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return asdict(cfg)
