"""The benchmark table: one ``Benchmark`` entry per benchmark (data sources, task, metrics).

    bench = BENCHMARKS["rewardbench"]
    examples, provenance = load_benchmark(bench, None, seed=0)

Benchmarks (the paper's Tables 2-3):

* ``rewardbench`` (pointwise): chosen and rejected are scored separately with the generic
  rubric (A.1.3); an item is correct (1) when chosen scores higher, a tie counts 0.5, an
  unparseable score 0. ``*_expected`` metrics break ties by the expected score (probabilities
  of 1..5) when the backend reads token probabilities.
* ``rewardbench-pairwise``: the A.1.2 prompt, judged in both orders; per order 1 when it picks
  chosen, so an item scores 1, 0.5 (the orders disagree, or one did not parse) or 0; plus swap
  consistency. Sections and total follow official RewardBench (``rewardbench_section_scores``).
* ``biggen``: Pearson/Spearman/Kendall of the judge's score with the human and GPT-4 scores of
  BiGGen-Bench human_eval (rows with human score -1 left out of the human metrics, counted).
* ``in-domain``: a question-level held-out split (``split_by_question``) of the Prometheus
  MT-Bench + Vicuna data; Pearson with the mean GPT-4 score (stands in for Feedback Bench).
* ``safe-rlhf``: the safer response preferred (sides shuffled with the seed); ``autoj``: human
  labels, accuracy on non-tie items, ties counted apart.
* ``judgebench``: 620 hard pairs with objective labels, judged in both orders; a pair is right
  only when both orders pick the right response (JudgeBench's protocol); accuracy overall and
  per category (knowledge, reasoning, math, coding).
* ``rm-bench``: per prompt, each of 3 chosen x 3 rejected responses (concise, detailed plain,
  detailed markdown) compared in both orders, a cell right only when both orders prefer the
  chosen one; easy / normal / hard = lower-left / diagonal / upper-right of RM-Bench's 3x3
  matrix (chosen more / equally / less formatted than rejected), overall and per domain.
  ``--limit`` counts prompts; each costs 18 judgments.

Each entry carries its loader (``Source``), task, metrics and, where it has them, its notes.

Data comes from the first of: a bundled slice, files under ``SHARED_DATA``
(``$SRJUDGE_DATA``, else ``<repo>/../shared/data``), a Hub id.
"""

from __future__ import annotations

import glob
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srjudge import data
from srjudge.data.judge_benchmarks import JUDGEBENCH_CATEGORIES, RM_BENCH_DOMAINS, RM_BENCH_STYLES
from srjudge.evaluation.metrics import (
    MetricFn,
    Record,
    both_orders_metrics,
    consistency,
    correlations,
    mean_of,
    rewardbench_metrics,
    style_matrix_metrics,
)
from srjudge.records import Example

SHARED_DATA = Path(
    os.environ.get("SRJUDGE_DATA", Path(__file__).resolve().parents[4] / "shared" / "data")
)
"""Root of the staged benchmark files (``$SRJUDGE_DATA``, else ``<repo>/../shared/data``)."""
IN_DOMAIN_FRACTION = 0.2
"""Share of MT-Bench + Vicuna questions held out by the standalone ``in-domain`` benchmark."""

BIGGEN_CAPABILITIES: tuple[str, ...] = (
    "grounding",
    "instruction_following",
    "multilingual",
    "planning",
    "reasoning",
    "refinement",
    "safety",
    "theory_of_mind",
    "tool_usage",
)
BIGGEN_TASKS = 77


# ---------------------------------------------------------------------------------------
# benchmarks


@dataclass(frozen=True)
class Source:
    """Where a benchmark's data comes from: the first of bundled slice, shared files, hub id."""

    loader: str
    """A ``data.LOADERS`` name."""
    bundled: str | None = None
    """A ``data.BUNDLED`` name, used when that slice ships with the package."""
    shared: tuple[str, ...] = ()
    """Globs under ``SHARED_DATA``."""
    hub: str | None = None
    """A Hugging Face dataset id (``owner/name:split``), tried last."""
    seeded: bool = False
    """The loader takes the evaluation seed (Safe-RLHF shuffles the sides with it)."""


NotesFn = Callable[[list[Example], list[Example], list[Record]], list[str]]
"""(items loaded, items judged, prediction records) -> lines for the result's notes."""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: where its data is, how items are judged, its metrics and notes. Adding
    a benchmark is one entry in ``BENCHMARKS`` (plus a loader in ``srjudge.data`` for a new
    source format)."""

    name: str
    sources: tuple[Source, ...]
    task: str
    """``grade`` (pointwise score), ``grade_pair`` (score both responses of a pair) or
    ``compare`` (pairwise, both orders)."""
    metrics: dict[str, MetricFn]
    """Metric name -> function of the prediction records (each gets a bootstrap CI)."""
    stratum: Callable[[Example], str] = lambda ex: "all"
    """Strata for ``--limit`` sampling and the bootstrap (RewardBench: subset)."""
    override_loader: str | None = None
    """Loader for paths given by the caller; default: the first source's loader."""
    split: bool = False
    """Hold out ``IN_DOMAIN_FRACTION`` of the questions (default sources only)."""
    notes: NotesFn | None = None
    """Benchmark-specific notes (coverage, items left out of a metric and why, protocol)."""
    subset_table: bool = False
    """Also report accuracy per stratum (RewardBench: per subset) in the result."""

    @property
    def mode(self) -> str:
        return "pairwise" if self.task in ("compare", "compare_styles") else "pointwise"


def _subset(ex: Example) -> str:
    return str(ex.meta.get("subset", "unknown"))


def _judgebench_notes(
    loaded: list[Example], judged: list[Example], records: list[Record]
) -> list[str]:
    same = sum(ex.response_1 == ex.response_2 for ex in judged)  # type: ignore[union-attr]
    models = Counter(str(ex.meta.get("response_model")) for ex in judged)
    notes = [
        "a pair is right only when both orders pick the right response (JudgeBench's "
        "protocol); an order with no parsed verdict makes the pair wrong (JudgeBench's script "
        "would count it right when the other order is right)",
        "rubric: factual correctness (the criterion JudgeBench gave Prometheus 2; "
        "data.rubrics.CORRECTNESS_RUBRIC)",
        "pairs judged per response model: "
        + ", ".join(f"{m} {n}" for m, n in sorted(models.items())),
    ]
    if same:
        notes.append(f"{same} judged pairs have identical responses (never right in both orders)")
    return notes


def _rm_bench_notes(
    loaded: list[Example], judged: list[Example], records: list[Record]
) -> list[str]:
    present = {str(ex.meta.get("domain")) for ex in loaded}
    absent = [d for d in RM_BENCH_DOMAINS if d not in present]
    notes = [
        f"each prompt: 3 chosen x 3 rejected styles ({', '.join(RM_BENCH_STYLES)}), every "
        "pair judged in both orders (18 judgments); a cell is right only when both orders "
        "prefer the chosen response (a judge guessing at random per order scores 0.25, one "
        "that always picks the same position 0)",
        "rubric: helpfulness, harmlessness, honesty (paper A.1.3, as for RewardBench)",
    ]
    if absent:
        why = " (RM-Bench's math split is not in ../shared/data; see its MANIFEST)"
        notes.append(
            f"no items for domain {', '.join(absent)}{why if 'math' in absent else ''}: "
            "easy/normal/hard/average pool the domains present, so they are not the paper's "
            "totals"
        )
    return notes


_RB_SHARED = (
    "reward-bench/Chat.jsonl",
    "reward-bench/Chat_Hard.jsonl",
    "reward-bench/Safety.jsonl",
    "reward-bench/Reasoning.jsonl",
)
_RB_SOURCE = Source("rewardbench", bundled="rewardbench", shared=_RB_SHARED)


def _biggen_notes(loaded: list[Example], judged: list[Example], records: list[Record]) -> list[str]:
    notes = []
    for what, exs in (("the data", loaded), ("the items judged", judged)):
        caps = {str(ex.meta.get("capability")) for ex in exs}
        tasks = {str(ex.meta.get("task")) for ex in exs}
        missing = [c for c in BIGGEN_CAPABILITIES if c not in caps]
        notes.append(
            f"{what} cover {len(tasks)} of {BIGGEN_TASKS} tasks ({len(caps)} of "
            f"{len(BIGGEN_CAPABILITIES)} capabilities; missing: {', '.join(missing) or 'none'})"
        )
    no_human = sum(r.get("gold") is None for r in records)
    notes.append(f"{no_human} items without a human score (-1) left out of *_human")
    return notes


def _autoj_notes(loaded: list[Example], judged: list[Example], records: list[Record]) -> list[str]:
    ties = [r for r in records if r["gold"] == "tie"]
    split = sum(r.get("consistent") is False for r in ties)
    return [
        f"{len(ties)} tie items left out of accuracy; on {split} of them the two "
        "orders disagreed (the judge's nearest answer to a tie)"
    ]


BENCHMARKS: dict[str, Benchmark] = {
    "rewardbench": Benchmark(
        "rewardbench",
        (_RB_SOURCE,),
        "grade_pair",
        {**rewardbench_metrics("score"), **rewardbench_metrics("score_expected", "_expected")},
        stratum=_subset,
        subset_table=True,
    ),
    "rewardbench-pairwise": Benchmark(
        "rewardbench-pairwise",
        (_RB_SOURCE,),
        "compare",
        {**rewardbench_metrics("score"), "consistency": consistency},
        stratum=_subset,
        subset_table=True,
    ),
    "biggen": Benchmark(
        "biggen",
        (
            Source(
                "biggen-human",
                bundled="biggen",
                shared=("biggen-bench/human_eval_*.jsonl",),
                hub="prometheus-eval/BiGGen-Bench-Results:human_eval",
            ),
        ),
        "grade",
        correlations({"human": "gold", "gpt4": "gpt4"}),
        stratum=lambda ex: str(ex.meta.get("capability", "unknown")),
        notes=_biggen_notes,
    ),
    "in-domain": Benchmark(
        "in-domain",
        (
            Source("mt-bench", bundled="mt-bench", shared=("mt-bench-prometheus/*.jsonl",)),
            Source(
                "vicuna-bench", bundled="vicuna-bench", shared=("vicuna-bench-prometheus/*.json",)
            ),
        ),
        "grade",
        correlations({"gpt4": "gold"}),
        stratum=lambda ex: str(ex.source),
        override_loader="srjudge",
        split=True,
    ),
    "safe-rlhf": Benchmark(
        "safe-rlhf",
        (Source("safe-rlhf", shared=("safe-rlhf/*.json",), seeded=True),),
        "compare",
        {"accuracy": mean_of("score"), "consistency": consistency},
    ),
    "autoj": Benchmark(
        "autoj",
        (Source("autoj-pairwise", shared=("autoj-pairwise/*.jsonl",)),),
        "compare",
        {"accuracy": mean_of("score"), "consistency": consistency},
        stratum=lambda ex: str(ex.gold_preference),
        notes=_autoj_notes,
    ),
    "judgebench": Benchmark(
        "judgebench",
        (Source("judgebench", shared=("judgebench/judgebench_*.jsonl",)),),
        "compare",
        both_orders_metrics(JUDGEBENCH_CATEGORIES),
        stratum=lambda ex: str(ex.meta.get("category", "unknown")),
        notes=_judgebench_notes,
    ),
    "rm-bench": Benchmark(
        "rm-bench",
        (Source("rm-bench", shared=("rm-bench/*_filtered.json",)),),
        "compare_styles",
        style_matrix_metrics(RM_BENCH_DOMAINS),
        stratum=lambda ex: str(ex.meta.get("domain", "unknown")),
        notes=_rm_bench_notes,
    ),
}
MODE_VARIANTS: dict[tuple[str, str], str] = {("rewardbench", "pairwise"): "rewardbench-pairwise"}
"""``--mode pairwise`` turns ``rewardbench`` into ``rewardbench-pairwise``."""


def resolve_benchmarks(names: Iterable[str], mode: str | None = None) -> list[str]:
    """Check names against ``BENCHMARKS``, applying ``mode`` where a benchmark has a variant."""
    out = []
    for name in names:
        name = MODE_VARIANTS.get((name, mode), name) if mode else name
        if name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        out.append(name)
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------
# loading and selecting items


def _source_paths(src: Source) -> list[str]:
    if src.bundled and src.bundled in data.BUNDLED:
        try:
            return [str(data.bundled_path(src.bundled))]
        except FileNotFoundError:
            pass
    found = sorted(p for g in src.shared for p in glob.glob(str(SHARED_DATA / g)))
    if found:
        return found
    if src.hub:
        return [src.hub]
    raise FileNotFoundError(
        f"no data for loader {src.loader!r}: nothing bundled, nothing under {SHARED_DATA} "
        f"({', '.join(src.shared)}); set SRJUDGE_DATA or pass a path"
    )


def _load_one(src: Source, path: str, seed: int) -> data.LoadResult:
    if src.seeded:
        return data.LOADERS[src.loader](path, seed=seed)  # type: ignore[call-arg]
    return data.load(path, src.loader)


def load_benchmark(
    bench: Benchmark, paths: Sequence[str] | None, seed: int
) -> tuple[list[Example], dict[str, Any]]:
    """(examples, provenance) of a benchmark from ``paths`` or its default sources."""
    if paths:
        src = Source(bench.override_loader) if bench.override_loader else bench.sources[0]
        plan = [(src, str(p)) for p in paths]
    else:
        plan = [(src, p) for src in bench.sources for p in _source_paths(src)]
    examples: list[Example] = []
    info: dict[str, Any] = {"paths": [p for _, p in plan], "rows": 0, "load_errors": 0}
    for src, path in plan:
        result = _load_one(src, path, seed)
        examples += result.examples
        info["rows"] += result.rows
        info["load_errors"] += len(result.errors)
    if bench.split and not paths:
        _, examples = data.split_by_question(examples, IN_DOMAIN_FRACTION, seed)
        info["heldout"] = f"{IN_DOMAIN_FRACTION:.0%} of questions (split_by_question, seed {seed})"
    return examples, info


def stratified_sample(
    examples: Sequence[Example], k: int, stratum: Callable[[Example], str], seed: int
) -> list[Example]:
    """``k`` examples, allocated to strata in proportion to their size (largest remainder,
    each stratum at least one while ``k`` allows), drawn with ``seed``; input order kept."""
    if k >= len(examples):
        return list(examples)
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(stratum(ex), []).append(i)
    n = len(examples)
    quota = {s: k * len(m) // n for s, m in groups.items()}

    # leftover slots: empty strata first, then by largest remainder, then in seeded order
    def rank(s: str) -> tuple[bool, int, float]:
        return quota[s] > 0, -(k * len(groups[s]) % n), random.Random(f"{seed}:{s}").random()

    order = sorted(groups, key=rank)
    for s in order[: k - sum(quota.values())]:
        quota[s] += 1
    keep: set[int] = set()
    for s, members in sorted(groups.items()):
        keep.update(random.Random(f"{seed}:{s}").sample(members, min(quota[s], len(members))))
    return [examples[i] for i in sorted(keep)]


def benchmark_notes(
    bench: Benchmark, loaded: list[Example], judged: list[Example], records: list[Record]
) -> list[str]:
    """The benchmark's own notes, then those of its task."""
    notes = bench.notes(loaded, judged, records) if bench.notes else []
    if bench.task == "grade":
        unparsed = sum(r.get("pred") is None for r in records)
        if unparsed:
            notes.append(f"{unparsed} items with no parsed score left out of the correlations")
    return notes
