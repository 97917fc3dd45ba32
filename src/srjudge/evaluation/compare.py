"""Paired-bootstrap comparison of two evaluation folders, on the items both judged.

deltas = compare_evals("ev/seed", "ev/iter2")     # delta = B - A per benchmark and metric
print(format_deltas(deltas, "seed", "iter2"))
srjudge compare ev/seed ev/iter2
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from srjudge.evaluation.benchmarks import BENCHMARKS
from srjudge.evaluation.metrics import N_BOOT, MetricFn, parse_failure_rate
from srjudge.evaluation.results import load_predictions
from srjudge.evaluation.stats import format_estimate, paired_bootstrap

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
