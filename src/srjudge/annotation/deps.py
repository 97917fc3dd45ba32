"""The one place where ``srjudge.annotation`` imports the rest of srjudge.

Everything the annotation package needs from other srjudge modules is re-exported here, so a
move of those modules changes this file only. ``load_benchmark`` and ``BENCHMARKS`` are
imported on first use: they are needed only to recover the items of ``srjudge eval`` output.
"""

from __future__ import annotations

from typing import Any

from srjudge import __version__
from srjudge.evaluation.figures import Figure
from srjudge.evaluation.report import Section, render_html, render_markdown
from srjudge.evaluation.stats import bootstrap_ci
from srjudge.records import Example, PairwiseExample, RecordError, load_examples

__all__ = [
    "Example",
    "Figure",
    "PairwiseExample",
    "RecordError",
    "Section",
    "__version__",
    "benchmark_examples",
    "bootstrap_ci",
    "load_examples",
    "render_html",
    "render_markdown",
]


def benchmark_examples(name: str, paths: list[str] | None, seed: int) -> list[Example]:
    """The items ``srjudge eval`` judged for benchmark ``name`` (before ``--limit``)."""
    from srjudge.evaluation.benchmarks import BENCHMARKS, load_benchmark

    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}")
    examples: Any
    examples, _ = load_benchmark(BENCHMARKS[name], paths, seed)
    return examples
