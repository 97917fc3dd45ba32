"""Metric functions over prediction records, and RewardBench's official section weighting.

    fn = rewardbench_metrics("score")["total"]; fn(records)     # a float
    rewardbench_section_scores({"math-prm": 1.0, "hep-go": 0.0})

A metric is ``list[Record] -> float`` (``MetricFn``), so the bootstrap can resample records.
Items whose judgments all failed to parse are never given a score: correlations leave them out,
accuracies count them wrong, and ``parse_failure_rate`` reports them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from srjudge.evaluation.stats import corr

Record = dict[str, Any]
MetricFn = Callable[[list[Record]], float]
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
        groups.setdefault(r["stratum"], []).append(as_number(r.get(field)))
    return {s: sum(v) / len(v) for s, v in groups.items()}


def as_number(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _section_fn(section: str | None, field: str) -> MetricFn:
    def fn(records: list[Record]) -> float:
        scores = rewardbench_section_scores(_subset_accuracy(records, field))
        if section is None:  # the total: mean of the sections present
            return sum(scores.values()) / len(scores) if scores else math.nan
        return scores.get(section, math.nan)

    return fn


def rewardbench_metrics(field: str, suffix: str = "") -> dict[str, MetricFn]:
    fns = {key + suffix: _section_fn(sec, field) for sec, key in SECTION_KEYS.items()}
    fns["total" + suffix] = _section_fn(None, field)
    return fns


# ---------------------------------------------------------------------------------------
# generic metric functions over prediction records


def parse_failure_rate(records: list[Record]) -> float:
    judged = sum(r["judgments"] for r in records)
    return sum(r["parse_failures"] for r in records) / judged if judged else math.nan


def mean_of(field: str) -> MetricFn:
    def fn(records: list[Record]) -> float:
        values = [r[field] for r in records if r.get(field) is not None]
        return sum(values) / len(values) if values else math.nan

    return fn


def consistency(records: list[Record]) -> float:
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


def correlations(golds: dict[str, str]) -> dict[str, MetricFn]:
    fns = {}
    for gold_name, gold_field in golds.items():
        for method in ("pearson", "spearman", "kendall"):
            fns[f"{method}_{gold_name}"] = _corr_fn("pred", gold_field, method)
    return fns
