"""Results of a study: win rates with bootstrap CIs, agreement, reasons, a Figure-2 plot.

    srjudge annotate report study.db [--out DIR]      # prints the tables; writes DIR/
        annotation_report.md, annotation_report.html, annotation_report.json, figures/*.png

    from srjudge.annotation.report import study_sections, summarize
    numbers = summarize("study.db")                   # the numbers, as a dict
    sections = study_sections("study.db")             # report Sections, for a run report

Outcomes are from A's side (``--a`` of ``annotate create``): *A better*, *tie (both good)*,
*tie (both poor)*, *B better*. Per annotator: the share of the items they labelled. The
average over annotators (the paper's Figure 2 numbers) is the mean of the annotators' shares.
Every share has a 95% percentile bootstrap CI over *items* (``evaluation.stats.bootstrap_ci``:
items resampled with replacement; the average is recomputed from each annotator's labels on
the resampled items). Agreement is Krippendorff's alpha (the ``krippendorff`` package) over
the annotators' three-way outcomes (A better / tie / B better), nominal and ordinal, on the
items at least two annotators labelled, plus the raw share of agreeing annotator pairs.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from srjudge.annotation import store
from srjudge.annotation.deps import (
    Figure,
    Section,
    bootstrap_ci,
    render_html,
    render_markdown,
)

OUTCOMES: dict[str, str] = {
    "win": "A better",
    "tie_good": "tie (both good)",
    "tie_poor": "tie (both poor)",
    "loss": "B better",
}
"""Outcome keys (from A's side), in plot order."""
SHARES = (*OUTCOMES, "tie")
N_BOOT = 1000
_THREE_WAY = {"win": 0, "tie_good": 1, "tie_poor": 1, "loss": 2}


def outcome(row: store.LabelRow) -> str:
    """The label as an outcome for A: 'win', 'tie_good', 'tie_poor' or 'loss'."""
    preferred = row.preferred
    return "win" if preferred == "a" else "loss" if preferred == "b" else row.choice


# ---------------------------------------------------------------------------------------
# win rates


def outcome_matrix(rows: list[store.LabelRow]) -> tuple[list[str], list[str], np.ndarray]:
    """(annotators, item uids, matrix of outcome indices into OUTCOMES; -1 = not labelled)."""
    names = sorted({r.annotator for r in rows})
    uids = sorted({r.item_uid for r in rows})
    col = {u: j for j, u in enumerate(uids)}
    row_of = {n: i for i, n in enumerate(names)}
    keys = list(OUTCOMES)
    m = np.full((len(names), len(uids)), -1, dtype=int)
    for r in rows:
        m[row_of[r.annotator], col[r.item_uid]] = keys.index(outcome(r))
    return names, uids, m


def _shares(m: np.ndarray) -> dict[str, np.ndarray]:
    """Per annotator (row): share of each outcome among the items they labelled (NaN if none)."""
    labelled = (m >= 0).sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {k: (m == i).sum(axis=1) / labelled for i, k in enumerate(OUTCOMES)}
    out["tie"] = out["tie_good"] + out["tie_poor"]
    return out


def _mean_share(m: np.ndarray, key: str) -> float:
    values = _shares(m)[key]
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _estimate(m: np.ndarray, key: str, n_boot: int, seed: int) -> dict[str, float]:
    cols = list(range(m.shape[1]))
    point, lo, hi = bootstrap_ci(
        cols, lambda idx: _mean_share(m[:, idx], key), n_boot=n_boot, seed=seed
    )
    return {"value": point, "lo": lo, "hi": hi}


def win_rates(rows: list[store.LabelRow], *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """``{"annotators": {name: {...}}, "average": {...}}``; each holds ``labels`` and, per
    share in ``SHARES``, ``{"value", "lo", "hi"}``."""
    names, _, m = outcome_matrix(rows)
    out: dict[str, Any] = {"annotators": {}, "average": {}}
    for i, name in enumerate(names):
        mine = m[i : i + 1, m[i] >= 0]
        entry: dict[str, Any] = {"labels": int(mine.shape[1])}
        entry |= {k: _estimate(mine, k, n_boot, seed) for k in SHARES}
        out["annotators"][name] = entry
    out["average"] = {"labels": int((m >= 0).sum()), "items": int(m.shape[1])}
    out["average"] |= {k: _estimate(m, k, n_boot, seed) for k in SHARES}
    return out


# ---------------------------------------------------------------------------------------
# agreement and reasons


def agreement(rows: list[store.LabelRow]) -> dict[str, Any]:
    """Krippendorff's alpha (nominal, ordinal) and pairwise raw agreement on shared items."""
    import krippendorff

    names, _, m = outcome_matrix(rows)
    keys = list(OUTCOMES)
    lut = np.array([_THREE_WAY[k] for k in keys])
    three = np.where(m >= 0, lut[np.clip(m, 0, None)], -1)
    shared = (m >= 0).sum(axis=0) >= 2
    out: dict[str, Any] = {"annotators": len(names), "shared_items": int(shared.sum())}
    if len(names) < 2 or not shared.any():
        out["note"] = "needs two annotators who labelled the same item"
        return out
    data = np.where(three[:, shared] >= 0, three[:, shared], np.nan).astype(float)
    for level in ("nominal", "ordinal"):
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                value = float(
                    krippendorff.alpha(
                        reliability_data=data, value_domain=[0, 1, 2], level_of_measurement=level
                    )
                )
        except ValueError:
            value = math.nan
        out[f"alpha_{level}"] = value
        if math.isnan(value):  # every label the same outcome: no expected disagreement
            out["note"] = "alpha undefined: all labels on shared items give one outcome"
    agree = pairs = 0
    for col in data.T:
        vals = col[~np.isnan(col)]
        for x in range(len(vals)):
            for y in range(x + 1, len(vals)):
                pairs += 1
                agree += int(vals[x] == vals[y])
    out["pairwise_agreement"] = agree / pairs
    out["annotator_pairs"] = pairs
    return out


def reason_counts(rows: list[store.LabelRow]) -> dict[str, dict[str, int]]:
    """``{"a" | "b" | "tie": {"labels": n, reason: count, ...}}``: reasons given when A was
    preferred, when B was, and with ties."""
    out: dict[str, Counter] = {side: Counter() for side in ("a", "b", "tie")}
    for r in rows:
        c = out[r.preferred]
        c["labels"] += 1
        c.update(r.reasons)
    return {
        side: {"labels": c["labels"], **{k: c[k] for k in store.REASONS}} for side, c in out.items()
    }


# ---------------------------------------------------------------------------------------
# the numbers, the plot, the sections


def summarize(db_path: str | Path, *, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Every number of the report, JSON-ready."""
    with store.opened(db_path) as conn:
        meta = store.read_meta(conn)
        rows = store.all_labels(conn)
        n_items = store.item_count(conn)
    return {
        "label_a": meta["label_a"],
        "label_b": meta["label_b"],
        "study_items": n_items,
        "selection": meta["selection"],
        "seed": meta["seed"],
        "counts": meta["counts"],
        "win_rates": win_rates(rows, n_boot=n_boot, seed=int(meta["seed"])),
        "agreement": agreement(rows),
        "reasons": reason_counts(rows),
    }


def _pct(e: dict[str, float]) -> str:
    if math.isnan(e["value"]):
        return "-"
    if math.isnan(e["lo"]):
        return f"{100 * e['value']:.1f}%"
    return f"{100 * e['value']:.1f}% [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]"


def winrate_figure(summary: dict[str, Any]) -> Figure | None:
    """Stacked horizontal bars, one per annotator and the average (like the paper's Fig. 2)."""
    wr = summary["win_rates"]
    if not wr["annotators"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("Average", wr["average"])] + list(wr["annotators"].items())
    colors = {"win": "#2e7d32", "tie_good": "#b0bec5", "tie_poor": "#78909c", "loss": "#c62828"}
    a, b = summary["label_a"], summary["label_b"]
    names = {"win": f"{a} better", "loss": f"{b} better"}
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) + 1.6), layout="constrained")
    for y, (_, entry) in enumerate(rows):
        left = 0.0
        for k in OUTCOMES:
            v = entry[k]["value"]
            v = 0.0 if math.isnan(v) else 100 * v
            label = names.get(k, OUTCOMES[k]) if y == 0 else None
            ax.barh(y, v, left=left, color=colors[k], label=label)
            if v >= 6:
                ax.text(left + v / 2, y, f"{v:.0f}%", ha="center", va="center", color="white")
            left += v
    ticks = [f"Average ({len(rows) - 1} annotators)"]
    ticks += [f"{n} ({e['labels']} items)" for n, e in rows[1:]]
    ax.set_yticks(range(len(rows)), ticks)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of labelled items")
    ax.set_title(f"{a} vs {b}: which rationale is better ({summary['study_items']} items)")
    fig.legend(loc="outside lower center", ncol=4, fontsize=9, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Figure("annotation_winrate", f"{a} vs {b}", buf.getvalue())


def _winrate_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    a, b = summary["label_a"], summary["label_b"]
    headers = [
        "annotator",
        "labels",
        f"{a} better",
        "tie (both good)",
        "tie (both poor)",
        f"{b} better",
        "ties",
    ]
    wr = summary["win_rates"]
    rows = [("average over annotators", wr["average"]), *wr["annotators"].items()]
    body = [[name, str(e["labels"]), *(_pct(e[k]) for k in (*OUTCOMES, "tie"))] for name, e in rows]
    return headers, body


def _agreement_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    ag = summary["agreement"]
    if "pairwise_agreement" not in ag:
        return None
    fmt = lambda v: "-" if math.isnan(v) else f"{v:.3f}"  # noqa: E731
    rows = [
        ["Krippendorff's alpha (nominal)", fmt(ag["alpha_nominal"])],
        ["Krippendorff's alpha (ordinal: A better < tie < B better)", fmt(ag["alpha_ordinal"])],
        ["pairwise agreement (share of annotator pairs)", fmt(ag["pairwise_agreement"])],
        ["items labelled by 2+ annotators", str(ag["shared_items"])],
    ]
    return ["measure", "value"], rows


def _reasons_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    a, b = summary["label_a"], summary["label_b"]
    rs = summary["reasons"]
    cols = [("a", f"{a} preferred"), ("b", f"{b} preferred"), ("tie", "tie")]

    def cell(side: str, key: str) -> str:
        n = rs[side]["labels"]
        return f"{rs[side][key]} ({100 * rs[side][key] / n:.0f}%)" if n else "-"

    rows = [[text, *(cell(s, k) for s, _ in cols)] for k, text in store.REASONS.items()]
    rows.insert(0, ["labels", *(str(rs[s]["labels"]) for s, _ in cols)])
    return ["reason ticked", *(h for _, h in cols)], rows


def sections_from_summary(summary: dict[str, Any]) -> list[Section]:
    a, b = summary["label_a"], summary["label_b"]
    counts = summary["counts"]
    left = ", ".join(f"{k}: {v}" for k, v in counts.get("left_out", {}).items()) or "none"
    notes = [
        f"A = {a}, B = {b}; {summary['study_items']} items ({summary['selection']}; "
        f"{counts.get('judged')} judged by both, left out: {left}); sides shown at random.",
        "Share of the items each annotator labelled, with a 95% bootstrap CI over items; the "
        "average is the mean of the annotators' shares.",
    ]
    out = [
        Section(
            f"Human evaluation: {a} vs {b} (paper Figure 2)",
            _winrate_table(summary),
            notes,
            winrate_figure(summary),
        )
    ]
    ag = _agreement_table(summary)
    note = summary["agreement"].get("note")
    out.append(Section("Inter-annotator agreement", ag, [note] if note else []))
    out.append(
        Section(
            "Reasons given",
            _reasons_table(summary),
            ["Count (share of that outcome's labels) of each reason ticked."],
        )
    )
    return out


def study_sections(db_path: str | Path, *, n_boot: int = N_BOOT) -> list[Section]:
    """The study's results as ``srjudge.evaluation.report`` sections (for ``srjudge report``)."""
    return sections_from_summary(summarize(db_path, n_boot=n_boot))


def _json_ready(obj: Any) -> Any:
    """NaN (an undefined share or alpha) as null, so the file is strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    return obj


def write_study_report(
    db_path: str | Path, out_dir: str | Path, *, n_boot: int = N_BOOT
) -> tuple[Path, Path, dict[str, Any]]:
    """Write ``annotation_report.{md,html,json}`` and ``figures/``; returns (md, html, summary)."""
    summary = summarize(db_path, n_boot=n_boot)
    sections = sections_from_summary(summary)
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for s in sections:
        if s.figure:
            (out / "figures" / f"{s.figure.name}.png").write_bytes(s.figure.png)
    title = f"srjudge human evaluation: {Path(db_path).name}"
    md, html = out / "annotation_report.md", out / "annotation_report.html"
    md.write_text(render_markdown(title, sections), encoding="utf-8")
    html.write_text(render_html(title, sections), encoding="utf-8")
    (out / "annotation_report.json").write_text(
        json.dumps(_json_ready(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return md, html, summary
