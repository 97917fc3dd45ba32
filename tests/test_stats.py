"""Bootstrap CIs, the paired bootstrap test and correlations (srjudge.evaluation.stats)."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as sps

from srjudge.evaluation.stats import (
    bootstrap_ci,
    corr,
    correlation,
    format_estimate,
    paired_bootstrap,
)


def _bernoulli(n: int, p: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.random() < p) for _ in range(n)]


def test_bootstrap_ci_contains_point_and_shrinks_with_n():
    small = bootstrap_ci(_bernoulli(50, 0.7, 1), seed=0)
    large = bootstrap_ci(_bernoulli(2000, 0.7, 1), seed=0)
    for point, lo, hi in (small, large):
        assert lo <= point <= hi
    assert (large[2] - large[1]) < (small[2] - small[1]) / 3


def test_bootstrap_ci_is_seeded_and_metric_fn_matches_mean():
    values = _bernoulli(100, 0.4, 2)
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)
    by_fn = bootstrap_ci(values, lambda xs: sum(xs) / len(xs), seed=5, n_boot=200)
    assert by_fn[0] == pytest.approx(sum(values) / len(values))
    assert by_fn[1] <= by_fn[0] <= by_fn[2]


def test_bootstrap_ci_strata_keep_stratum_sizes():
    # Two strata whose metric is the mean of per-stratum means: with stratified resampling
    # every resample has both strata, so the metric is always defined.
    items = [("a", 1.0)] * 3 + [("b", 0.0)] * 50

    def per_stratum_mean(xs):
        groups = {}
        for s, v in xs:
            groups.setdefault(s, []).append(v)
        return len(groups)  # number of strata present

    point, lo, hi = bootstrap_ci(items, per_stratum_mean, strata=[s for s, _ in items])
    assert (point, lo, hi) == (2, 2, 2)


def test_bootstrap_ci_empty_and_bad_arguments():
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], alpha=1.5)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], strata=["a"])


def _accuracy(items):
    return sum(items) / len(items)


def test_paired_bootstrap_clearly_better_run_has_small_p():
    a = dict(enumerate(_bernoulli(300, 0.5, 3)))
    b = {i: 1 if random.Random(i).random() < 0.8 else v for i, v in a.items()}
    delta, lo, hi, p = paired_bootstrap(
        {str(k): v for k, v in a.items()}, {str(k): v for k, v in b.items()}, _accuracy
    )
    assert delta > 0.2 and lo > 0
    assert lo <= delta <= hi
    assert p < 0.01


def test_paired_bootstrap_identical_runs_have_large_p():
    a = {f"x{i}": v for i, v in enumerate(_bernoulli(200, 0.6, 4))}
    delta, lo, hi, p = paired_bootstrap(a, dict(a), _accuracy)
    assert (delta, lo, hi) == (0.0, 0.0, 0.0)
    assert p == 1.0


def test_paired_bootstrap_aligns_by_id_and_ignores_unshared_items():
    a = {"1": 1, "2": 0, "3": 1, "only-a": 0}
    b = {"3": 1, "2": 0, "1": 1, "only-b": 1}  # same items, other order
    delta, _, _, p = paired_bootstrap(a, b, _accuracy, n_boot=100)
    assert delta == 0.0 and p == 1.0
    with pytest.raises(ValueError, match="share no item"):
        paired_bootstrap({"a": 1}, {"b": 1}, _accuracy)


def test_paired_bootstrap_small_noisy_difference_is_not_significant():
    a = {str(i): v for i, v in enumerate(_bernoulli(40, 0.5, 5))}
    b = dict(a)
    flipped = next(k for k, v in a.items() if v == 0)
    b[flipped] = 1  # one item better out of 40
    _, lo, hi, p = paired_bootstrap(a, b, _accuracy)
    assert p > 0.05 and lo <= 0 <= hi


@pytest.mark.parametrize(
    ("method", "reference"),
    [("pearson", sps.pearsonr), ("spearman", sps.spearmanr), ("kendall", sps.kendalltau)],
)
def test_correlation_matches_scipy_with_ci(method, reference):
    rng = random.Random(6)
    x = [rng.randint(1, 5) for _ in range(80)]
    y = [min(5, max(1, v + rng.choice([-1, 0, 0, 1]))) for v in x]
    r, lo, hi = correlation(x, y, method, n_boot=300)
    assert r == pytest.approx(reference(x, y).statistic)
    assert lo <= r <= hi


def test_correlation_undefined_is_nan():
    assert math.isnan(corr([3, 3, 3], [1, 2, 3]))
    assert math.isnan(corr([1], [1]))
    assert all(math.isnan(v) for v in correlation([2, 2, 2], [1, 2, 3]))
    with pytest.raises(ValueError):
        correlation([1, 2], [1, 2, 3])


def test_format_estimate():
    assert format_estimate(0.751, 0.66, 0.84) == "0.75 [0.66, 0.84]"
    assert format_estimate(math.nan, 0, 1) == "-"
    assert format_estimate(0.5, math.nan, math.nan) == "0.50"
