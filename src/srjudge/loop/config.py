"""One typed config per run: YAML -> nested dataclasses, dotted overrides applied last.

    cfg = load_config("configs/demo.yaml", ["iterations.0.dpo.beta=0.05", "seed=1"])

Every field is documented where it is declared, with its allowed range. The whole config is
checked at load, before any work, and every problem is reported at once (``ConfigError``, one
line per bad setting, named by its dotted path): wrong types and unknown keys
(``loop.schema``), values out of range and contradictions between fields (``__post_init__``),
unknown loaders, bundled slices, benchmarks and curation strategies, missing data files, and
seed or meta-judge models that are no alias, directory or findable hub id. YAML is read with
1.2 floats, so ``learning_rate: 5e-6`` (or ``...learning_rate=5e-6`` on the command line) is a
number. The resolved config is written into the run folder by ``loop.rundir``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from srjudge.data import BUNDLED, LOADERS
from srjudge.loop.launch_config import LaunchConfig, batch_problems
from srjudge.loop.schema import ConfigError, build, show
from srjudge.training.curate import CurationConfig
from srjudge.training.settings import (
    DPOSettings,
    Problem,
    SFTSettings,
    raise_problems,
    range_problems,
)


@dataclass
class DataSource:
    format: str
    """Loader name in ``srjudge.data.LOADERS`` (e.g. ``mt-bench``, ``feedback-collection``)."""
    path: str
    """A file, ``bundled:<name>`` for a slice shipped with srjudge, or a Hugging Face dataset id."""
    limit: int | None = None
    """Keep only the first ``limit`` (>= 1) examples of this source (after loading)."""

    def __post_init__(self) -> None:
        raise_problems(self.field_problems())

    def field_problems(self) -> list[Problem]:
        """Every bad field (reads only this object's fields; see ``loop.schema``)."""
        problems = range_problems(self, {"limit": (1, None)})
        if self.format not in LOADERS:
            problems.append(
                ("format", f"unknown loader {self.format!r}{_close(self.format, LOADERS)}")
            )
        return problems + [("path", p) for p in [_path_problem(self.path)] if p]


def _close(name: str, known: Iterable[str]) -> str:
    """The hint for a name not in ``known``: ``; did you mean 'x'? (known: ...)``."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    return (f"; did you mean {close[0]!r}?" if close else "") + f" (known: {', '.join(known)})"


def _path_problem(path: str) -> str | None:
    """Why a data source path cannot be read, or None (a file, a bundled slice, a dataset id)."""
    if not path.strip():
        return "is empty"
    if path.startswith("bundled:"):
        name = path.removeprefix("bundled:")
        return None if name in BUNDLED else f"no bundled slice {name!r}{_close(name, BUNDLED)}"
    local = path.startswith(("/", ".", "~")) or Path(path).suffix in _DATA_SUFFIXES
    if local and not Path(path).expanduser().is_file():
        return f"no such file: {path}"
    return None


_DATA_SUFFIXES = (".jsonl", ".json", ".gz", ".csv", ".parquet", ".tsv")


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
    """In (0, 4]: gold scores are on a 1-5 scale."""
    heldout_fraction: float = 0.0
    """Fraction of pointwise *questions* held out of training for in-domain evaluation."""
    max_prompt_chars: int | None = None
    """Drop training examples whose rendered judge prompt is longer than this (counted in the
    data stage). Keeps CPU-sized runs fast; None keeps everything."""

    def __post_init__(self) -> None:
        problems = self.field_problems()
        if not self.pointwise and not self.pairwise:
            problems.append((None, "give at least one pointwise or pairwise source"))
        if self.derive_pairwise and not self.pointwise:
            problems.append((None, "derive_pairwise needs pointwise sources"))
        raise_problems(problems)

    def field_problems(self) -> list[Problem]:
        bounds = {"derive_min_gap": (0, 4, True), "heldout_fraction": (0, 1),
                  "max_prompt_chars": (1, None)}  # fmt: skip
        problems = range_problems(self, bounds)
        if self.heldout_fraction == 1:
            problems.append(("heldout_fraction", "must be below 1 (1 holds out everything)"))
        return problems


@dataclass
class SFTStageConfig:
    enabled: bool = True
    """False skips this seed judge (e.g. the 'DPO without SFT' ablation)."""
    max_examples: int | None = None
    """Cap on training examples (sampled with the run seed), >= 1."""
    score_only: bool = False
    """Train on '[RESULT] n' completions without a rationale (the score-only ablation)."""
    settings: SFTSettings = field(default_factory=SFTSettings)

    def __post_init__(self) -> None:
        raise_problems(self.field_problems())

    def field_problems(self) -> list[Problem]:
        return range_problems(self, {"max_examples": (1, None)})


@dataclass
class MergeConfig:
    weight: float = 0.5
    """J_SFT = weight * pointwise judge + (1 - weight) * pairwise judge."""

    def __post_init__(self) -> None:
        raise_problems(self.field_problems())

    def field_problems(self) -> list[Problem]:
        return range_problems(self, {"weight": (0, 1)})


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
    """0 = greedy."""
    top_p: float = 1.0
    """In (0, 1]."""
    max_new_tokens: int = 512
    max_retries: int = 2
    """Re-samples of an unparseable judgment before it is recorded as a failure."""

    def __post_init__(self) -> None:
        problems = self.field_problems()
        if (self.fraction is None) == (self.count is None):
            problems.append((None, "sample: give exactly one of 'fraction' or 'count'"))
        raise_problems(problems)

    def field_problems(self) -> list[Problem]:
        problems = range_problems(
            self,
            {
                "fraction": (0, 1, True),
                "count": (1, None),
                "n": (1, None),
                "temperature": (0, None),
                "top_p": (0, 1, True),
                "max_new_tokens": (1, None),
                "max_retries": (0, None),
            },
        )
        if not self.modes:
            problems.append(("modes", "must name at least one mode"))
        return problems


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
            raise_problems(
                [(None, "method best_of_n_sft selects judgments by the gold answer: "
                  "use curation.strategy: correct_answer")]
            )  # fmt: skip


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
    """Items per benchmark (stratified sample), >= 1; None = all."""
    samples: int = 1
    """Judgments per item; >1 reports the majority (self-consistency)."""
    max_new_tokens: int = 512
    max_retries: int = 1
    """Re-samples of an unparseable judgment before it counts as a parse failure."""
    score_only: bool = False
    """Judge with the score-only prompts (for judges trained without rationales)."""

    def __post_init__(self) -> None:
        raise_problems(self.field_problems())

    def field_problems(self) -> list[Problem]:
        from srjudge.evaluation.benchmarks import BENCHMARKS  # a table of loaders: only here

        problems = range_problems(
            self,
            {"limit": (1, None), "samples": (1, None), "max_new_tokens": (1, None),
             "max_retries": (0, None)},
        )  # fmt: skip
        problems += [
            (f"benchmarks.{i}", f"unknown benchmark {name!r}{_close(name, BENCHMARKS)}")
            for i, name in enumerate(self.benchmarks)
            if name not in BENCHMARKS
        ]
        if self.benchmarks and not self.models:
            problems.append(("models", "is empty, so none of the benchmarks would run"))
        return problems


@dataclass
class RunConfig:
    name: str
    """Shown in reports; the run folder defaults to runs/<name>."""
    data: DataConfig
    model: str = "smollm2-135m"
    """Seed model: an alias (``srjudge models``), a local directory or a hub id."""
    backend: Literal["auto", "transformers", "vllm", "openai", "mock"] = "auto"
    """Sampling backend for self-rationalization and evaluation; ``auto``: the vLLM engine
    where it is installed and takes the model, else transformers."""
    run_dir: str | None = None
    """Where stages write; default runs/<name>."""
    seed: int = 0
    """Seeds data sampling, generation and training (>= 0)."""
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
        raise_problems(self.field_problems() + self._contradictions())

    def field_problems(self) -> list[Problem]:
        problems = range_problems(self, {"seed": (0, None)})
        for name in ("name", "model", "run_dir"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                problems.append((name, "must not be empty"))
        return problems

    def _contradictions(self) -> list[Problem]:
        out: list[Problem] = []
        if self.sft_pointwise.enabled and not self.data.pointwise:
            out.append((None, "sft_pointwise is enabled but data.pointwise is empty"))
        has_pairwise = bool(self.data.pairwise) or self.data.derive_pairwise
        if self.sft_pairwise.enabled and not has_pairwise:
            out.append((None, "sft_pairwise is enabled but there is no pairwise data "
                        "(data.pairwise or data.derive_pairwise)"))  # fmt: skip
        if "in-domain" in self.eval.benchmarks and self.data.heldout_fraction == 0:
            out.append((None, "eval.benchmarks 'in-domain' needs data.heldout_fraction > 0"))
        for i, it in enumerate(self.iterations):
            if "pointwise" in it.sample.modes and not self.data.pointwise:
                out.append((None, f"iterations.{i}.sample.modes: pointwise, but no pointwise data"))
            if "pairwise" in it.sample.modes and not has_pairwise:
                out.append((None, f"iterations.{i}.sample.modes: pairwise, but no pairwise data"))
        return out + (batch_problems(self, self.launch.num_processes) if self.launch else [])

    @property
    def directory(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")


# ---------------------------------------------------------------------------------------
# reading: YAML, ``base:`` files, dotted overrides, then one check of everything


@functools.cache
def _yaml_loader() -> type[yaml.SafeLoader]:
    """PyYAML's safe loader with YAML 1.2 floats: ``5e-6`` and ``1e3`` are numbers (YAML 1.1
    reads them as strings, so ``learning_rate: 5e-6`` would be refused as text)."""

    class Loader(yaml.SafeLoader):
        pass

    # copy the table first: add_implicit_resolver would append to SafeLoader's own lists
    Loader.yaml_implicit_resolvers = {
        k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def parse_yaml(text: str) -> Any:
    """YAML with 1.2 floats (``_yaml_loader``).

    >>> parse_yaml("lr: 5e-6"), parse_yaml("2.0e-4"), parse_yaml("1_000"), parse_yaml("5e")
    ({'lr': 5e-06}, 0.0002, 1000, '5e')
    """
    return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no object tags


def _parse_value(text: str) -> Any:
    """YAML semantics for override values: ``0.05`` -> float, ``true`` -> bool, ``[a, b]``."""
    return parse_yaml(text) if text != "" else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides; list items are addressed by index (``iterations.0.n``).
    A path that runs through a value, or past the end of a list, is a ``ConfigError`` naming
    the override and the setting, as is a value that is not YAML.

    >>> apply_overrides({"a": {"b": 1}, "l": [{"x": 1}]}, ["a.b=2", "l.0.x=3", "c=[1, 2]"])
    {'a': {'b': 2}, 'l': [{'x': 3}], 'c': [1, 2]}
    """
    out, problems = _overridden(raw, overrides)
    if problems:
        raise ConfigError(problems)
    return out


def _overridden(raw: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``raw`` with the good overrides applied, and what is wrong with the others."""
    out = copy.deepcopy(raw)
    return out, [p for p in (_apply_one(out, item) for item in overrides) if p]


def _apply_one(out: dict[str, Any], item: str) -> str | None:
    """Apply one override in place; returns what is wrong with it, if anything."""
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        return f"override {item!r}: expected setting=value, e.g. seed=1 or iterations.0.sample.n=4"
    try:
        value = _parse_value(text)
    except yaml.YAMLError as e:
        return f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})"
    node: Any = out
    for i, part in enumerate(parts):
        where, last = ".".join(parts[:i]), i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                entries = f"indexes 0..{len(node) - 1}" if node else "no entries"
                return f"override {item!r}: {where} is a list with {entries}, so it has no {part!r}"
            part = int(part)
        elif not isinstance(node, dict):
            return (f"override {item!r}: {where} is a value ({show(node)}), not a section, "
                    f"so {key.strip()!r} names no setting")  # fmt: skip
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    return None


def config_from_dict(raw: dict[str, Any], source: str | None = None) -> RunConfig:
    """The ``RunConfig`` of ``raw``, or ``ConfigError`` listing every bad setting."""
    return build(RunConfig, raw, source)


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


def read_config_dict(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config; a top-level ``base: other.yaml`` (relative to this file) is read
    first and this file's keys are merged over it, so variants state only what differs.
    A missing or unreadable file, bad YAML or a ``base:`` loop is a ``ConfigError``."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError([f"base: {path} is already in the chain of base files"], str(_seen[0]))
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"cannot read the config ({type(e).__name__}: {e})"], str(path)) from e
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {' '.join(str(e).split())}"], str(path)) from e
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"expected a mapping of settings at the top, got {show(raw)}"], str(path)
        )
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base.strip():
        raise ConfigError([f"base: expected a file name, got {show(base)}"], str(path))
    return deep_merge(read_config_dict(path.parent / base, (*_seen, path.resolve())), raw)


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and check a run config; every problem (bad values, unknown names, a
    model path that does not exist) is reported in one ``ConfigError``. ``model_problems``
    adds what needs the hub (the run command checks both before any work)."""
    raw, problems = _overridden(read_config_dict(path), overrides or [])
    models = _model_problems(raw, lookup=False)
    try:
        cfg = config_from_dict(raw, str(path))
    except ConfigError as e:  # overrides, then settings, then models
        raise ConfigError(problems + e.problems + models, str(path)) from None
    if problems or models:
        raise ConfigError(problems + models, str(path))
    return cfg


def model_problems(cfg: RunConfig) -> list[str]:
    """Seed and meta-judge models that are no alias, no directory and no hub model found (in
    the HF cache, or by one lookup when online), one line each; nothing is downloaded."""
    return _model_problems(config_to_dict(cfg), lookup=True)


def _model_problems(raw: dict[str, Any], *, lookup: bool) -> list[str]:
    """``models.model_problem`` of the seed and meta-judge models, for the backends that load
    local models; ``raw`` may be unchecked."""
    if raw.get("backend", "auto") not in ("auto", "transformers", "vllm"):
        return []
    named = [("model", raw.get("model", "smollm2-135m"))]
    iterations = raw.get("iterations")
    for i, it in enumerate(iterations if isinstance(iterations, list) else []):
        if isinstance(it, dict) and isinstance(it.get("meta_judge"), str):
            named.append((f"iterations.{i}.meta_judge", it["meta_judge"]))
    from srjudge.models import model_problem  # imports torch: only for a config to run

    out = []
    for where, name in named:
        ok = not isinstance(name, str) or not name.strip()  # the schema reports those
        problem = None if ok else model_problem(name, lookup=lookup)
        if problem:
            out.append(f"{where}: {problem}")
    return out


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return asdict(cfg)
