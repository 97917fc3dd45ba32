"""Benchmarks (loader + metric) and ``evaluate``: a judge's metrics with 95% bootstrap CIs.

    from srjudge.evaluate import evaluate
    result = evaluate("smollm2-135m", ["rewardbench", "biggen"], limit=50, out_dir="ev")
    print(result.format_table())

    srjudge eval --model smollm2-135m --benchmarks rewardbench,biggen --limit 50 --out ev

Benchmarks (``BENCHMARKS``; the paper's Tables 2-3):

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

Items whose judgments all fail to parse are never given a score: pointwise correlations leave
them out, accuracies count them wrong, and every benchmark reports its parse-failure rate.

Output in ``out_dir``: ``predictions.jsonl`` (one line per item, keyed ``<benchmark>/<id>``,
written through ``ResumableJSONL``: a killed eval continues on rerun), ``metrics.json`` (written
last) and ``settings.json`` (a rerun with other settings is refused). A prediction line::

    {"key": "biggen/biggen-x-gpt4", "benchmark": "biggen", "id": "biggen-x-gpt4",
     "mode": "pointwise", "pred": 4.0, "verdict": 4, "gold": 3.0, "gpt4": 4.0,
     "rationale": "...", "judgments": 1, "parse_failures": 0, "stratum": "planning"}

Overlap: given training examples, evaluation items whose prompt overlaps them
(``data.find_overlap``) are left out and listed in ``metrics.json``; ``allow_overlap`` keeps
them, marks their predictions ``"overlap": true`` and puts a warning in the notes.
"""

from __future__ import annotations

import glob
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srjudge import __version__, data
from srjudge.backends import Backend, VerdictScorer
from srjudge.judge import Comparison, Grade, Judge
from srjudge.records import Example, PairwiseExample, PointwiseExample, read_jsonl
from srjudge.resume import ResumableJSONL
from srjudge.stats import bootstrap_ci, corr, format_estimate, paired_bootstrap

Record = dict[str, Any]
MetricFn = Callable[[list[Record]], float]

SHARED_DATA = Path(
    os.environ.get("SRJUDGE_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
"""Root of the staged benchmark files (``$SRJUDGE_DATA``, else ``<repo>/../shared/data``)."""
IN_DOMAIN_FRACTION = 0.2
"""Share of MT-Bench + Vicuna questions held out by the standalone ``in-domain`` benchmark."""
BATCH = 8
"""Items judged between two appends to ``predictions.jsonl``."""
N_BOOT = 1000

# ---------------------------------------------------------------------------------------
# RewardBench: official section weighting

# allenai/reward-bench rewardbench/constants.py (commit a32e272b), copied verbatim. math-prm
# has 447 items but weighs 984 = 6 x 164 ("upweighting to be equal to code"): Reasoning is
# the mean of the math-prm accuracy and the average of the six hep-* accuracies. Note: that
# file gives xstest-should-refuse 250 and xstest-should-respond 154, the reverse of the
# filtered split's sizes (154 and 250); kept as the official code has it.
REWARDBENCH_EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 250,
    "xstest-should-respond": 154,
    "donotanswer": 136,
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}
REWARDBENCH_SUBSET_MAPPING: dict[str, list[str]] = {
    "Chat": [
        "alpacaeval-easy",
        "alpacaeval-length",
        "alpacaeval-hard",
        "mt-bench-easy",
        "mt-bench-med",
    ],
    "Chat Hard": [
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ],
    "Safety": [
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}
SECTION_KEYS: dict[str, str] = {
    "Chat": "chat",
    "Chat Hard": "chat_hard",
    "Safety": "safety",
    "Reasoning": "reasoning",
}

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


def rewardbench_section_scores(subset_accuracy: dict[str, float]) -> dict[str, float]:
    """Section scores exactly as ``calculate_scores_per_section`` of official RewardBench.

    Each section is the mean of its subsets' accuracies weighted by
    ``REWARDBENCH_EXAMPLE_COUNTS``, over the subsets present; a section with none is left out
    (official code writes 0; a sample without a section should not score 0 there).

    >>> s = rewardbench_section_scores({"math-prm": 1.0, "hep-go": 0.0, "hep-cpp": 0.0})
    >>> s["Reasoning"]   # math-prm weighs as much as all code subsets together
    0.75
    """
    out = {}
    for section, subsets in REWARDBENCH_SUBSET_MAPPING.items():
        present = [s for s in subsets if s in subset_accuracy]
        weight = sum(REWARDBENCH_EXAMPLE_COUNTS[s] for s in present)
        if weight:
            total = sum(subset_accuracy[s] * REWARDBENCH_EXAMPLE_COUNTS[s] for s in present)
            out[section] = total / weight
    return out


def _subset_accuracy(records: list[Record], field: str) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for r in records:
        groups.setdefault(r["stratum"], []).append(_num(r.get(field)))
    return {s: sum(v) / len(v) for s, v in groups.items()}


def _num(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _section_fn(section: str | None, field: str) -> MetricFn:
    def fn(records: list[Record]) -> float:
        scores = rewardbench_section_scores(_subset_accuracy(records, field))
        if section is None:  # the total: mean of the sections present
            return sum(scores.values()) / len(scores) if scores else math.nan
        return scores.get(section, math.nan)

    return fn


def _rewardbench_metrics(field: str, suffix: str = "") -> dict[str, MetricFn]:
    fns = {key + suffix: _section_fn(sec, field) for sec, key in SECTION_KEYS.items()}
    fns["total" + suffix] = _section_fn(None, field)
    return fns


# ---------------------------------------------------------------------------------------
# generic metric functions over prediction records


def parse_failure_rate(records: list[Record]) -> float:
    judged = sum(r["judgments"] for r in records)
    return sum(r["parse_failures"] for r in records) / judged if judged else math.nan


def _mean_of(field: str) -> MetricFn:
    def fn(records: list[Record]) -> float:
        values = [r[field] for r in records if r.get(field) is not None]
        return sum(values) / len(values) if values else math.nan

    return fn


def _consistency(records: list[Record]) -> float:
    known = [r["consistent"] for r in records if r.get("consistent") is not None]
    return sum(known) / len(known) if known else math.nan


def _corr_fn(pred: str, gold: str, method: str) -> MetricFn:
    def fn(records: list[Record]) -> float:
        pairs = [
            (r[pred], r[gold])
            for r in records
            if r.get(pred) is not None and r.get(gold) is not None
        ]
        return corr([p for p, _ in pairs], [g for _, g in pairs], method)

    return fn


def _correlations(golds: dict[str, str]) -> dict[str, MetricFn]:
    fns = {}
    for gold_name, gold_field in golds.items():
        for method in ("pearson", "spearman", "kendall"):
            fns[f"{method}_{gold_name}"] = _corr_fn("pred", gold_field, method)
    return fns


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


@dataclass(frozen=True)
class Benchmark:
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

    @property
    def mode(self) -> str:
        return "pairwise" if self.task == "compare" else "pointwise"


def _subset(ex: Example) -> str:
    return str(ex.meta.get("subset", "unknown"))


_RB_SHARED = (
    "reward-bench/Chat.jsonl",
    "reward-bench/Chat_Hard.jsonl",
    "reward-bench/Safety.jsonl",
    "reward-bench/Reasoning.jsonl",
)
_RB_SOURCE = Source("rewardbench", bundled="rewardbench", shared=_RB_SHARED)

BENCHMARKS: dict[str, Benchmark] = {
    "rewardbench": Benchmark(
        "rewardbench",
        (_RB_SOURCE,),
        "grade_pair",
        {**_rewardbench_metrics("score"), **_rewardbench_metrics("score_expected", "_expected")},
        stratum=_subset,
    ),
    "rewardbench-pairwise": Benchmark(
        "rewardbench-pairwise",
        (_RB_SOURCE,),
        "compare",
        {**_rewardbench_metrics("score"), "consistency": _consistency},
        stratum=_subset,
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
        _correlations({"human": "gold", "gpt4": "gpt4"}),
        stratum=lambda ex: str(ex.meta.get("capability", "unknown")),
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
        _correlations({"gpt4": "gold"}),
        stratum=lambda ex: str(ex.source),
        override_loader="srjudge",
        split=True,
    ),
    "safe-rlhf": Benchmark(
        "safe-rlhf",
        (Source("safe-rlhf", shared=("safe-rlhf/*.json",)),),
        "compare",
        {"accuracy": _mean_of("score"), "consistency": _consistency},
    ),
    "autoj": Benchmark(
        "autoj",
        (Source("autoj-pairwise", shared=("autoj-pairwise/*.jsonl",)),),
        "compare",
        {"accuracy": _mean_of("score"), "consistency": _consistency},
        stratum=lambda ex: str(ex.gold_preference),
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


def _load_one(loader: str, path: str, seed: int) -> data.LoadResult:
    if loader == "safe-rlhf":
        return data.load_safe_rlhf(path, seed=seed)
    return data.load(path, loader)


def load_benchmark(
    bench: Benchmark, paths: Sequence[str] | None, seed: int
) -> tuple[list[Example], dict[str, Any]]:
    """(examples, provenance) of a benchmark from ``paths`` or its default sources."""
    if paths:
        loader = bench.override_loader or bench.sources[0].loader
        plan = [(loader, str(p)) for p in paths]
    else:
        plan = [(src.loader, p) for src in bench.sources for p in _source_paths(src)]
    examples: list[Example] = []
    info: dict[str, Any] = {"paths": [p for _, p in plan], "rows": 0, "load_errors": 0}
    for loader, path in plan:
        result = _load_one(loader, path, seed)
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


# ---------------------------------------------------------------------------------------
# judging items into prediction records


@dataclass(frozen=True)
class JudgeOptions:
    samples: int = 1
    seed: int = 0
    max_new_tokens: int = 512
    expected_score: bool = False
    score_only: bool = False
    """Judge with the score-only prompts (judges trained without rationales)."""


def _grade_fields(g: Grade) -> Record:
    return {
        "verdict": g.verdict,
        "pred": g.mean,
        "expected_score": g.expected_score,
        "score_probs": g.score_probs,
        "rationale": g.rationale,
        "raw": None if g.verdict is not None else g.judgments[0].raw,
        "parse_errors": [j.parse_error for j in g.judgments if j.parse_error],
        "judgments": len(g.judgments),
        "parse_failures": g.parse_failures,
    }


def _grade(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Grade]:
    return judge.grade_batch(
        examples,  # type: ignore[arg-type]
        samples=opts.samples,
        seed=opts.seed,
        max_new_tokens=opts.max_new_tokens,
        expected_score=opts.expected_score,
        score_only=opts.score_only,
    )


def _graded_records(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Record]:
    out = []
    for ex, g in zip(examples, _grade(judge, examples, opts), strict=True):
        rec = _grade_fields(g)
        rec["pred_expected"] = rec["expected_score"]
        gpt4 = ex.meta.get("gpt4_score")
        rec |= {"gold": ex.gold_score, "gpt4": gpt4 if isinstance(gpt4, int | float) else None}
        out.append(rec)
    return out


def _side(ex: PairwiseExample, chosen: bool) -> PointwiseExample:
    gold = 1 if ex.gold_preference in (1, None) else 2
    first = (gold == 1) == chosen
    return PointwiseExample(
        id=f"{ex.id}#{'chosen' if chosen else 'rejected'}",
        context=list(ex.context),
        response=ex.response_1 if first else ex.response_2,
        rubric=ex.rubric,
        source=ex.source,
        meta={"pair_id": ex.id},
    )


def _pair_score(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 1.0 if a > b else 0.0 if a < b else 0.5


def _pair_records(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Record]:
    sides = [_side(ex, c) for ex in examples for c in (True, False)]  # type: ignore[arg-type]
    grades = _grade(judge, sides, opts)
    out = []
    for i, _ in enumerate(examples):
        gc, gr = grades[2 * i], grades[2 * i + 1]
        score = _pair_score(gc.verdict, gr.verdict)
        expected = score
        if score == 0.5 and gc.expected_score is not None and gr.expected_score is not None:
            expected = _pair_score(gc.expected_score, gr.expected_score)
        out.append(
            {
                "chosen": _grade_fields(gc),
                "rejected": _grade_fields(gr),
                "score": 0.0 if score is None else score,
                "score_expected": None if gc.expected_score is None else _num(expected),
                "gold": 1,
                "judgments": len(gc.judgments) + len(gr.judgments),
                "parse_failures": gc.parse_failures + gr.parse_failures,
            }
        )
    return out


def _order_score(verdict: int | None, gold: Any) -> float | None:
    return None if verdict is None else float(verdict == gold)


def _comparison_record(ex: PairwiseExample, c: Comparison) -> Record:
    gold = ex.gold_preference
    votes = [_order_score(v, gold) for v in (c.majority, c.swapped_majority)]
    votes = [v for v in votes if v is not None]
    score = None if gold == "tie" else (sum(votes) / len(votes) if votes else 0.0)
    return {
        "verdict": c.verdict,
        "verdict_original_order": c.majority,
        "verdict_swapped_order": c.swapped_majority,
        "consistent": c.consistent,
        "gold": gold,
        "score": score,
        "rationale": c.rationale,
        "judgments": len(c.judgments) + len(c.swapped_judgments),
        "parse_failures": c.parse_failures,
    }


def _compare_records(judge: Judge, examples: list[Example], opts: JudgeOptions) -> list[Record]:
    results = judge.compare_batch(
        examples,  # type: ignore[arg-type]
        samples=opts.samples,
        both_orders=True,
        seed=opts.seed,
        max_new_tokens=opts.max_new_tokens,
        score_only=opts.score_only,
    )
    return [_comparison_record(ex, c) for ex, c in zip(examples, results, strict=True)]  # type: ignore[arg-type]


_TASKS = {"grade": _graded_records, "grade_pair": _pair_records, "compare": _compare_records}


# ---------------------------------------------------------------------------------------
# results


@dataclass
class Metric:
    value: float
    lo: float
    hi: float
    n: int

    def format(self, digits: int = 2) -> str:
        return format_estimate(self.value, self.lo, self.hi, digits)


@dataclass
class BenchmarkResult:
    name: str
    mode: str
    metrics: dict[str, Metric]
    counts: dict[str, Any]
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    overlap: dict[str, Any] | None = None
    subsets: dict[str, dict[str, Any]] | None = None


@dataclass
class EvalResult:
    out_dir: str
    label: str
    settings: dict[str, Any]
    benchmarks: dict[str, BenchmarkResult]

    def summary(self) -> dict[str, dict[str, float]]:
        """``{benchmark: {metric: value}}`` (for a stage's provenance; NaN -> None)."""
        out = {b: {m: v.value for m, v in r.metrics.items()} for b, r in self.benchmarks.items()}
        return _nan_to_none(out)

    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none(asdict(self))

    def format_table(self) -> str:
        lines = [f"model: {self.label}  ({self.settings.get('backend')})", ""]
        lines.append(f"{'benchmark':<22}{'metric':<22}{'value [95% CI]':<26}{'n':>6}")
        for name, r in self.benchmarks.items():
            for metric, m in r.metrics.items():
                lines.append(f"{name:<22}{metric:<22}{m.format(3):<26}{m.n:>6}")
            for note in r.notes:
                lines.append(f"{'':<22}note: {note}")
        return "\n".join(lines)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _metric_from(d: dict[str, Any]) -> Metric:
    nan = math.nan
    return Metric(*(nan if d.get(k) is None else d[k] for k in ("value", "lo", "hi")), d["n"])


def load_eval(out_dir: str | Path) -> EvalResult:
    """Read ``metrics.json`` of an evaluation folder back into an ``EvalResult``."""
    d = json.loads((Path(out_dir) / "metrics.json").read_text(encoding="utf-8"))
    benches = {}
    for name, b in d["benchmarks"].items():
        metrics = {k: _metric_from(v) for k, v in b["metrics"].items()}
        benches[name] = BenchmarkResult(**{**b, "metrics": metrics})
    return EvalResult(d["out_dir"], d["label"], d["settings"], benches)


def load_predictions(out_dir: str | Path) -> dict[str, dict[str, Record]]:
    """``{benchmark: {item id: prediction record}}`` from ``predictions.jsonl``."""
    out: dict[str, dict[str, Record]] = {}
    path = Path(out_dir) / "predictions.jsonl"
    if path.is_file():
        for rec in read_jsonl(path):
            out.setdefault(rec["benchmark"], {})[rec["id"]] = rec
    return out


def compute_metrics(
    bench: Benchmark, records: list[Record], *, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Metric]:
    """Every metric of ``bench`` with a 95% bootstrap CI (stratified by ``stratum``)."""
    strata = [r["stratum"] for r in records]
    out = {}
    fns: dict[str, MetricFn] = {**bench.metrics, "parse_failure_rate": parse_failure_rate}
    for name, fn in fns.items():
        if name.endswith("_expected") and all(r.get("score_expected") is None for r in records):
            continue
        point, lo, hi = bootstrap_ci(records, fn, n_boot=n_boot, seed=seed, strata=strata)
        out[name] = Metric(point, lo, hi, len(records))
    return out


def _subset_table(records: list[Record]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(r["stratum"], []).append(r)
    return {
        s: {"accuracy": sum(_num(r.get("score")) for r in rs) / len(rs), "n": len(rs)}
        for s, rs in sorted(groups.items())
    }


def _notes(
    bench: Benchmark, loaded: list[Example], examples: list[Example], records: list[Record]
) -> list[str]:
    notes = []
    if bench.name == "biggen":
        for what, exs in (("the data", loaded), ("the items judged", examples)):
            caps = {str(ex.meta.get("capability")) for ex in exs}
            tasks = {str(ex.meta.get("task")) for ex in exs}
            missing = [c for c in BIGGEN_CAPABILITIES if c not in caps]
            notes.append(
                f"{what} cover {len(tasks)} of {BIGGEN_TASKS} tasks ({len(caps)} of "
                f"{len(BIGGEN_CAPABILITIES)} capabilities; missing: {', '.join(missing) or 'none'})"
            )
        no_human = sum(r.get("gold") is None for r in records)
        notes.append(f"{no_human} items without a human score (-1) left out of *_human")
    if bench.task == "grade":
        unparsed = sum(r.get("pred") is None for r in records)
        if unparsed:
            notes.append(f"{unparsed} items with no parsed score left out of the correlations")
    if bench.name == "autoj":
        ties = [r for r in records if r["gold"] == "tie"]
        split = sum(r.get("consistent") is False for r in ties)
        notes.append(
            f"{len(ties)} tie items left out of accuracy; on {split} of them the two "
            "orders disagreed (the judge's nearest answer to a tie)"
        )
    return notes


# ---------------------------------------------------------------------------------------
# evaluate


def _as_judge(
    model_or_judge: str | Backend | Judge, backend: str, options: dict, max_retries: int | None
) -> Judge:
    if isinstance(model_or_judge, Judge):
        judge = model_or_judge
    elif isinstance(model_or_judge, str):
        judge = Judge.load(model_or_judge, backend=backend, **options)
    else:
        judge = Judge(model_or_judge)
    if max_retries is not None:
        judge.max_retries = max_retries
    return judge


def _check_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    path = out_dir / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in settings if k != "benchmarks" and old.get(k) != settings[k]]
        if diff:
            raise ValueError(
                f"{out_dir} holds an evaluation with other settings ({', '.join(diff)}); "
                "use another --out or delete it"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _normal_paths(
    paths: dict[str, str | Sequence[str]] | None, mode: str | None
) -> dict[str, list[str]]:
    """Path overrides as ``{benchmark: [str, ...]}``, keys mapped like ``resolve_benchmarks``."""
    out = {}
    for name, value in (paths or {}).items():
        key = MODE_VARIANTS.get((name, mode), name) if mode else name
        out[key] = [str(value)] if isinstance(value, str | Path) else [str(v) for v in value]
    return out


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def evaluate(
    model_or_judge: str | Backend | Judge,
    benchmarks: Sequence[str],
    *,
    out_dir: str | Path,
    limit: int | None = None,
    samples: int = 1,
    seed: int = 0,
    mode: str | None = None,
    paths: dict[str, str | Sequence[str]] | None = None,
    train_examples: Iterable[Example] | None = None,
    allow_overlap: bool = False,
    max_new_tokens: int = 512,
    expected_score: bool | None = None,
    backend: str = "transformers",
    backend_options: dict[str, Any] | None = None,
    model_label: str | None = None,
    max_retries: int | None = None,
    n_boot: int = N_BOOT,
    progress: bool = False,
    score_only: bool = False,
) -> EvalResult:
    """Judge ``benchmarks`` (``BENCHMARKS`` names) and write predictions and metrics.

    ``model_or_judge`` is a ``Judge``, a ``Backend``, or a model name loaded with
    ``backend``. ``limit`` takes a stratified, seeded sample per benchmark. ``paths`` replaces
    a benchmark's default data (``{"in-domain": "heldout.jsonl"}``; in-domain overrides are
    srjudge JSONL, already held out). ``expected_score`` (default: when the backend reads
    token probabilities) adds the expected-score variants. ``max_retries`` overrides the
    judge's re-samples of unparseable judgments (``Judge``: 2). ``progress`` prints a line to
    stderr after each batch of items. See the module docstring.
    """
    out = Path(out_dir)
    names = resolve_benchmarks(benchmarks, mode)
    judge = _as_judge(model_or_judge, backend, backend_options or {}, max_retries)
    if expected_score is None:
        expected_score = isinstance(judge.backend, VerdictScorer)
    opts = JudgeOptions(samples, seed, max_new_tokens, expected_score, score_only)
    label = model_label or (
        model_or_judge if isinstance(model_or_judge, str) else judge.backend.name
    )
    settings = {
        "model": label,
        "backend": judge.backend.name,
        "samples": samples,
        "seed": seed,
        "limit": limit,
        "max_new_tokens": max_new_tokens,
        "max_retries": judge.max_retries,
        "expected_score": expected_score,
        "score_only": score_only,
        "allow_overlap": allow_overlap,
        "benchmarks": names,
        "paths": _normal_paths(paths, mode),
    }
    _check_settings(out, settings)
    train = list(train_examples) if train_examples is not None else None
    results: dict[str, BenchmarkResult] = {}
    started = time.time()
    with ResumableJSONL(out / "predictions.jsonl", key="key") as sink:
        for name in names:
            results[name] = _run_benchmark(
                BENCHMARKS[name],
                judge,
                sink,
                opts,
                limit=limit,
                train=train,
                allow_overlap=allow_overlap,
                override=settings["paths"].get(name),
                n_boot=n_boot,
                progress=progress,
            )
    result = EvalResult(str(out), label, settings | {"srjudge_version": __version__}, results)
    result.settings["seconds"] = round(time.time() - started, 1)
    _write_json(out / "metrics.json", result.to_dict())
    return result


def _overlap(
    examples: list[Example], train: list[Example] | None, allow: bool
) -> tuple[list[Example], dict[str, Any] | None, set[str]]:
    if train is None:
        return examples, None, set()
    report = data.find_overlap(train, examples)
    ids = set(report.overlapping_ids)
    info = {
        "checked": True,
        "summary": report.summary(),
        "ids": sorted(ids),
        "matches": report.matches,
        "action": "kept (flagged)" if allow else "excluded",
    }
    if allow:
        return examples, info, ids
    return [ex for ex in examples if ex.id not in ids], info, set()


def _run_benchmark(
    bench: Benchmark,
    judge: Judge,
    sink: ResumableJSONL,
    opts: JudgeOptions,
    *,
    limit: int | None,
    train: list[Example] | None,
    allow_overlap: bool,
    override: list[str] | None,
    n_boot: int,
    progress: bool,
) -> BenchmarkResult:
    examples, info = load_benchmark(bench, override, opts.seed)
    examples, overlap, flagged = _overlap(examples, train, allow_overlap)
    info["after_overlap"] = len(examples)
    loaded = examples
    if limit is not None:
        examples = stratified_sample(examples, limit, bench.stratum, opts.seed)
    info["selected"] = len(examples)
    keys = {ex.id: f"{bench.name}/{ex.id}" for ex in examples}
    todo = [ex for ex in examples if keys[ex.id] not in sink.done]
    for i in range(0, len(todo), BATCH):
        batch = todo[i : i + BATCH]
        for ex, rec in zip(batch, _TASKS[bench.task](judge, batch, opts), strict=True):
            head = {
                "key": keys[ex.id],
                "benchmark": bench.name,
                "id": ex.id,
                "mode": bench.mode,
                "stratum": bench.stratum(ex),
            }
            if ex.id in flagged:
                head["overlap"] = True
            sink.append(head | rec)
        if progress:
            done = len(examples) - len(todo) + i + len(batch)
            print(f"{bench.name}: {done}/{len(examples)} items judged", file=sys.stderr)
    wanted = set(keys.values())
    records = [r for r in read_jsonl(sink.path) if r["key"] in wanted]
    metrics = compute_metrics(bench, records, n_boot=n_boot, seed=opts.seed)
    notes = _notes(bench, loaded, examples, records)
    if flagged:
        notes.insert(
            0,
            f"WARNING: {len(flagged)} items overlap the training data and were KEPT "
            "(--allow-overlap); these numbers may be contaminated",
        )
    if overlap and not flagged and overlap["ids"]:
        notes.insert(0, f"{len(overlap['ids'])} items overlapping the training data excluded")
    counts = {
        "items": len(records),
        "judgments": sum(r["judgments"] for r in records),
        "parse_failures": sum(r["parse_failures"] for r in records),
        "resumed": len(examples) - len(todo),
    }
    subsets = _subset_table(records) if bench.name.startswith("rewardbench") else None
    return BenchmarkResult(bench.name, bench.mode, metrics, counts, info, notes, overlap, subsets)


# ---------------------------------------------------------------------------------------
# comparing two evaluations


@dataclass
class Delta:
    benchmark: str
    metric: str
    a: float
    b: float
    delta: float
    lo: float
    hi: float
    p_value: float
    n: int


def compare_evals(
    dir_a: str | Path, dir_b: str | Path, *, n_boot: int = N_BOOT, seed: int = 0
) -> list[Delta]:
    """Paired bootstrap of every metric of the benchmarks two evaluations share, on the items
    both judged (aligned by id): ``delta = B - A`` with a 95% CI and a two-sided p-value."""
    preds_a, preds_b = load_predictions(dir_a), load_predictions(dir_b)
    out = []
    for name in (n for n in preds_a if n in preds_b and n in BENCHMARKS):
        a, b = preds_a[name], preds_b[name]
        common = set(a) & set(b)
        if not common:
            continue
        bench = BENCHMARKS[name]
        fns: dict[str, MetricFn] = {**bench.metrics, "parse_failure_rate": parse_failure_rate}
        for metric, fn in fns.items():
            if metric.endswith("_expected") and all(
                r.get("score_expected") is None for r in [*a.values(), *b.values()]
            ):
                continue
            delta, lo, hi, p = paired_bootstrap(
                a, b, fn, n_boot=n_boot, seed=seed, strata=lambda r: r["stratum"]
            )
            ra, rb = [a[i] for i in sorted(common)], [b[i] for i in sorted(common)]
            out.append(Delta(name, metric, fn(ra), fn(rb), delta, lo, hi, p, len(common)))
    return out


def format_deltas(deltas: list[Delta], label_a: str, label_b: str) -> str:
    lines = [
        f"A = {label_a}",
        f"B = {label_b}",
        "",
        f"{'benchmark':<22}{'metric':<22}{'A':>8}{'B':>8}  {'B - A [95% CI]':<28}{'p':>7}{'n':>6}",
    ]
    for d in deltas:
        diff = format_estimate(d.delta, d.lo, d.hi, 3)
        p = "-" if math.isnan(d.p_value) else f"{d.p_value:.3f}"
        a = "-" if math.isnan(d.a) else f"{d.a:.3f}"
        b = "-" if math.isnan(d.b) else f"{d.b:.3f}"
        lines.append(f"{d.benchmark:<22}{d.metric:<22}{a:>8}{b:>8}  {diff:<28}{p:>7}{d.n:>6}")
    return "\n".join(lines)


def training_examples_from_run(run_dir: str | Path) -> list[Example]:
    """The training examples of a run (``RUN/stages/*_data/{pointwise,pairwise}.jsonl``)."""
    out: list[Example] = []
    for path in sorted(Path(run_dir).glob("stages/*_data/*.jsonl")):
        if path.stem in ("pointwise", "pairwise"):
            out += data.load_srjudge(path).examples
    return out
