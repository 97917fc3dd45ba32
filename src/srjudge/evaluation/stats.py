"""Bootstrap confidence intervals, paired bootstrap tests and correlations; pure functions.

Every interval here is a percentile bootstrap over *items* (resampled with replacement,
``n_boot`` times, from a seeded ``numpy`` generator), so the same inputs and seed give the same
interval::

    bootstrap_ci([1, 0, 1, 1])                        # mean of values -> (0.75, lo, hi)
    bootstrap_ci(records, metric_fn=accuracy)         # any metric of a list of items
    bootstrap_ci(records, metric_fn=f, strata=subsets)  # resample within each stratum
    paired_bootstrap(run_a, run_b, accuracy)          # same items (dicts keyed by id): B - A
    correlation(pred, gold, "pearson")                # (r, lo, hi)

``strata`` (one label per item) keeps each stratum's size fixed in every resample, as a
benchmark built from fixed-size subsets (RewardBench) is. Resamples on which the metric is
undefined (NaN, e.g. a correlation of a constant resample) are dropped from the percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
from scipy import stats as sps

T = TypeVar("T")
Estimate = tuple[float, float, float]
"""(point, lo, hi)."""
CorrelationMethod = Literal["pearson", "spearman", "kendall"]
CORRELATIONS: tuple[str, ...] = ("pearson", "spearman", "kendall")


def _resample_indices(
    n: int, n_boot: int, rng: np.random.Generator, strata: Sequence[Any] | None
) -> np.ndarray:
    """``(n_boot, n)`` indices; with ``strata``, each stratum is resampled within itself."""
    if strata is None:
        return rng.integers(0, n, size=(n_boot, n))
    if len(strata) != n:
        raise ValueError(f"strata has {len(strata)} labels for {n} items")
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    cols = []
    for members in groups.values():
        idx = np.asarray(members)
        cols.append(idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))])
    return np.concatenate(cols, axis=1)


def _interval(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _check(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def bootstrap_ci(
    items: Sequence[Any],
    metric_fn: Callable[[list[Any]], float] | None = None,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    strata: Sequence[Any] | None = None,
) -> Estimate:
    """(metric of ``items``, lower, upper) of a ``1 - alpha`` percentile bootstrap interval.

    Without ``metric_fn`` the items are numbers and the metric is their mean. An empty input
    gives NaNs.

    >>> point, lo, hi = bootstrap_ci([0, 1] * 50, seed=0)
    >>> point, lo < 0.5 < hi
    (0.5, True)
    """
    _check(n_boot, alpha)
    n = len(items)
    if n == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = _resample_indices(n, n_boot, rng, strata)
    if metric_fn is None:
        values = np.asarray(items, dtype=float)
        point = float(values.mean())
        boots = values[idx].mean(axis=1)
    else:
        items = list(items)
        point = float(metric_fn(items))
        boots = np.array([metric_fn([items[i] for i in row]) for row in idx], dtype=float)
    lo, hi = _interval(boots, alpha)
    return point, lo, hi


def paired_bootstrap(
    a_items: Mapping[str, T],
    b_items: Mapping[str, T],
    metric_fn: Callable[[list[T]], float],
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    strata: Callable[[T], Any] | None = None,
) -> tuple[float, float, float, float]:
    """(delta, lo, hi, p_value) of ``metric(B) - metric(A)`` on the items both runs share.

    Items are aligned by id (the mapping keys); ids present in only one run are ignored. Both
    runs are resampled with the same indices, so item difficulty cancels out. The two-sided
    p-value tests delta = 0 by the shifted bootstrap distribution: the share of resampled
    deltas at least as far from the observed delta as the observed delta is from zero
    (``(count + 1) / (n_boot + 1)``, so never 0). Identical runs give delta 0 and p = 1.
    ``strata`` maps an item (of run A) to its stratum.
    """
    _check(n_boot, alpha)
    ids = sorted(set(a_items) & set(b_items))
    if not ids:
        raise ValueError("the two runs share no item ids")
    a = [a_items[i] for i in ids]
    b = [b_items[i] for i in ids]
    delta = float(metric_fn(b) - metric_fn(a))
    rng = np.random.default_rng(seed)
    labels = None if strata is None else [strata(x) for x in a]
    idx = _resample_indices(len(ids), n_boot, rng, labels)
    boots = np.array(
        [metric_fn([b[i] for i in row]) - metric_fn([a[i] for i in row]) for row in idx],
        dtype=float,
    )
    boots = boots[~np.isnan(boots)]
    lo, hi = _interval(boots, alpha)
    if boots.size == 0 or math.isnan(delta):
        return delta, lo, hi, math.nan
    extreme = int(np.sum(np.abs(boots - delta) >= abs(delta) - 1e-12))
    return delta, lo, hi, (extreme + 1) / (boots.size + 1)


def corr(x: Sequence[float], y: Sequence[float], method: str = "pearson") -> float:
    """The correlation of paired values; NaN for fewer than two pairs or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    if method == "pearson":
        return float(sps.pearsonr(x, y).statistic)
    if method == "spearman":
        return float(sps.spearmanr(x, y).statistic)
    if method == "kendall":
        return float(sps.kendalltau(x, y).statistic)
    raise ValueError(f"unknown correlation {method!r}; choose one of {', '.join(CORRELATIONS)}")


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two ``(n_boot, n)`` arrays; NaN for a constant row."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / den
    r[den == 0] = np.nan
    return r


def correlation(
    x: Sequence[float],
    y: Sequence[float],
    method: CorrelationMethod = "pearson",
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """(r, lo, hi): Pearson, Spearman or Kendall (tau-b) of paired values, bootstrap CI.

    NaN when fewer than two pairs or either side is constant.

    >>> r, lo, hi = correlation([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    >>> round(r, 3)
    0.775
    """
    _check(n_boot, alpha)
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length: {len(xa)} vs {len(ya)}")
    point = corr(xa, ya, method)
    if math.isnan(point):
        return point, math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(xa), size=(n_boot, len(xa)))
    if method == "pearson":
        boots = _pearson_rows(xa[idx], ya[idx])
    else:
        boots = np.array([corr(xa[row], ya[row], method) for row in idx], dtype=float)
    lo, hi = _interval(boots, alpha)
    return point, lo, hi


def format_estimate(point: float, lo: float, hi: float, digits: int = 2) -> str:
    """``0.75 [0.66, 0.84]``; ``-`` for a missing point, no interval when it is NaN.

    >>> format_estimate(0.75, 0.661, 0.84)
    '0.75 [0.66, 0.84]'
    """
    if point is None or math.isnan(point):
        return "-"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
