"""Report figures (matplotlib, Agg): predicted - gold histograms (paper Figure 5), score
distributions and training-loss curves, each returned as PNG bytes in a ``Figure``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from srjudge.evaluation.results import ModelEval

HIST_BENCHMARKS: dict[str, str] = {"biggen": "BiGGen (human)", "in-domain": "In-domain (GPT-4)"}


@dataclass
class Figure:
    name: str
    title: str
    png: bytes


# ---------------------------------------------------------------------------------------
# figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _pred_gold(records: list[dict[str, Any]]) -> list[tuple[float, float]]:
    return [
        (float(r["pred"]), float(r["gold"]))
        for r in records
        if isinstance(r.get("pred"), int | float) and isinstance(r.get("gold"), int | float)
    ]


def _colors(evals: list[ModelEval]) -> dict[str, Any]:
    """One colour per model in every figure (tab10 in row order); gold is grey."""
    cycle = _plt().get_cmap("tab10").colors
    colors: dict[str, Any] = {"gold": "0.55"}
    for k, e in enumerate(evals):
        colors[e.display] = cycle[k % len(cycle)]
    return colors


def _grouped_bars(
    ax, xs: list[int], series: dict[str, Counter], normalise: bool, colors: dict[str, Any]
) -> None:
    width = 0.8 / max(1, len(series))
    for k, (name, counts) in enumerate(series.items()):
        total = sum(counts.values()) or 1
        heights = [counts.get(x, 0) / (total if normalise else 1) for x in xs]
        xpos = [x - 0.4 + width * (k + 0.5) for x in xs]
        ax.bar(xpos, heights, width, label=name, color=colors.get(name))
    ax.set_xticks(xs)
    ax.legend(fontsize=8)


def difference_histograms(evals: list[ModelEval]) -> Figure | None:
    """Figure 5: counts of round(predicted - gold) per model, one panel per benchmark."""
    panels = []
    for bench, title in HIST_BENCHMARKS.items():
        series = {}
        for e in evals:
            pairs = _pred_gold(e.predictions.get(bench, []))
            if pairs:
                series[e.display] = Counter(round(p - g) for p, g in pairs)
        if series:
            panels.append((title, series))
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.6), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        _grouped_bars(ax, list(range(-4, 5)), series, normalise=False, colors=_colors(evals))
        ax.set_title(title)
        ax.set_xlabel("predicted - gold (negative: judge scores below gold)")
        ax.set_ylabel("items")
    return Figure("differences", "Predicted - gold score per model (paper Figure 5)", _png(fig))


def score_distributions(evals: list[ModelEval]) -> Figure | None:
    """Share of each score 1..5 per model (and gold), one panel per pointwise benchmark."""
    panels = []
    for bench, title in {**HIST_BENCHMARKS, "rewardbench": "RewardBench (chosen+rejected)"}.items():
        series: dict[str, Counter] = {}
        for e in evals:
            recs = e.predictions.get(bench, [])
            if bench == "rewardbench":
                scores = [
                    r[s].get("verdict")
                    for r in recs
                    for s in ("chosen", "rejected")
                    if isinstance(r.get(s), dict)
                ]
            else:
                scores = [r.get("verdict") for r in recs]
                gold = [round(r["gold"]) for r in recs if isinstance(r.get("gold"), int | float)]
                if gold and "gold" not in series:
                    series["gold"] = Counter(gold)
            parsed = [s for s in scores if isinstance(s, int)]
            if parsed:
                series[e.display] = Counter(parsed)
        if any(k != "gold" for k in series):
            panels.append((title, series))
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        _grouped_bars(ax, [1, 2, 3, 4, 5], series, normalise=True, colors=_colors(evals))
        ax.set_title(title)
        ax.set_xlabel("score")
        ax.set_ylabel("share of items")
    return Figure("scores", "Score distributions", _png(fig))


def loss_figure(losses: dict[str, list[tuple[float, float]]]) -> Figure | None:
    if not losses:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, curve in losses.items():
        ax.plot([x for x, _ in curve], [y for _, y in curve], marker=".", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    return Figure("loss", "Training loss per stage (DPO, SFT)", _png(fig))
