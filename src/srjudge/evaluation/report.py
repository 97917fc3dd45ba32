"""``report.md`` + a self-contained ``report.html`` from typed evaluation results.

    from srjudge.evaluation.report import write_report
    from srjudge.evaluation.results import find_evals
    md, html = write_report(find_evals(["ev/seed", "ev/iter2"]), "out")

    srjudge report runs/demo       # a run folder: loop.rundir.run_report reads it for this

Inputs are ``ModelEval``s (``results``: an ``EvalResult`` and its predictions per model), and
for a run the per-iteration rows (``IterationRow``) and training loss curves. Every piece is
optional: a missing one drops its table, row or figure, never the report. Tables follow the
paper: Table 2 (pointwise: RewardBench sections and total, BiGGen human and GPT-4 Pearson,
in-domain GPT-4 Pearson) and Table 3 (pairwise: RewardBench, Safe-RLHF, Auto-J), one row per
model, every value with its 95% CI. Figures (``figures``): predicted - gold histograms per
model (the paper's Figure 5), score distributions, and the loss curves; PNGs in ``figures/``
for the markdown, embedded as base64 in the HTML.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srjudge.evaluation.figures import (
    Figure,
    difference_histograms,
    loss_figure,
    score_distributions,
)
from srjudge.evaluation.results import Metric, ModelEval
from srjudge.evaluation.stats import format_estimate

# (header, benchmark, metric); the paper's Table 2 and Table 3
TABLE_POINTWISE: list[tuple[str, str, str]] = [
    ("RB Chat", "rewardbench", "chat"),
    ("RB Chat-Hard", "rewardbench", "chat_hard"),
    ("RB Safety", "rewardbench", "safety"),
    ("RB Reasoning", "rewardbench", "reasoning"),
    ("RB Total", "rewardbench", "total"),
    ("BiGGen Human Pearson", "biggen", "pearson_human"),
    ("BiGGen GPT-4 Pearson", "biggen", "pearson_gpt4"),
    ("In-domain GPT-4 Pearson", "in-domain", "pearson_gpt4"),
]
TABLE_PAIRWISE: list[tuple[str, str, str]] = [
    ("RB Chat", "rewardbench-pairwise", "chat"),
    ("RB Chat-Hard", "rewardbench-pairwise", "chat_hard"),
    ("RB Safety", "rewardbench-pairwise", "safety"),
    ("RB Reasoning", "rewardbench-pairwise", "reasoning"),
    ("RB Total", "rewardbench-pairwise", "total"),
    ("RB swap consistency", "rewardbench-pairwise", "consistency"),
    ("Safe-RLHF accuracy", "safe-rlhf", "accuracy"),
    ("Auto-J accuracy (no ties)", "autoj", "accuracy"),
]


@dataclass
class IterationRow:
    stage: str
    judgments: int | None = None
    parse_failures: int | None = None
    inputs: int | None = None
    mean_rationale_chars: float | None = None
    strategy: str | None = None
    pairs_kept: int | None = None
    by_rule: dict[str, int] = field(default_factory=dict)


def loss_curve(rows: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(step, loss) points of a TRL log history (rows without a finite loss are skipped)."""
    curve = []
    for i, r in enumerate(rows):
        loss = r.get("loss")
        if isinstance(loss, int | float) and math.isfinite(loss):
            x = r.get("step", r.get("epoch", i))
            curve.append((float(x if isinstance(x, int | float) else i), float(loss)))
    return curve


# ---------------------------------------------------------------------------------------
# tables


def _cell(m: Metric | None) -> str:
    if m is None or math.isnan(m.value):
        return "-"
    return format_estimate(m.value, m.lo, m.hi)


def metric_table(evals: list[ModelEval], columns: list[tuple[str, str, str]]):
    """(headers, rows) or None when no model has any of the columns' benchmarks."""
    used = [c for c in columns if any(e.value(c[1], c[2]) for e in evals)]
    if not used:
        return None
    rows = [
        [e.display] + [_cell(e.value(b, m)) for _, b, m in used]
        for e in evals
        if any(e.value(b, m) for _, b, m in used)
    ]
    return ["Model"] + [h for h, _, _ in used], rows


def parse_failure_table(evals: list[ModelEval]):
    benches = sorted({b for e in evals for b in e.result.benchmarks})
    if not benches:
        return None
    rows = [[e.display] + [_cell(e.value(b, "parse_failure_rate")) for b in benches] for e in evals]
    return ["Model"] + benches, rows


def iteration_table(rows: list[IterationRow]):
    if not rows:
        return None
    out = []
    for r in rows:
        rules = ", ".join(f"{k}: {v}" for k, v in sorted(r.by_rule.items())) or "-"
        out.append(
            [
                r.stage,
                _fmt(r.inputs),
                _fmt(r.judgments),
                _fmt(r.parse_failures),
                _fmt(r.mean_rationale_chars),
                r.strategy or "-",
                _fmt(r.pairs_kept),
                rules,
            ]
        )
    headers = [
        "Iteration",
        "Inputs",
        "Judgments sampled",
        "Parse failures",
        "Mean rationale (chars)",
        "Strategy",
        "Pairs kept",
        "Pairs per rule",
    ]
    return headers, out


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


# ---------------------------------------------------------------------------------------
# rendering


@dataclass
class Section:
    title: str
    table: tuple[list[str], list[list[str]]] | None = None
    text: list[str] = field(default_factory=list)
    figure: Figure | None = None


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in [headers, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}
th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}td{white-space:nowrap}
th{background:#eee}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd}p.note{color:#555;font-size:13px;margin:.2em 0}"""


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}", ""]
    for s in sections:
        parts += [f"## {s.title}", ""]
        if s.table:
            parts += [_md_table(*s.table), ""]
        parts += [f"- {t}" for t in s.text]
        if s.text:
            parts.append("")
        if s.figure:
            parts += [f"![{s.figure.title}](figures/{s.figure.name}.png)", ""]
    return "\n".join(parts)


def render_html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.table:
            parts.append(_html_table(*s.table))
        parts += [f"<p class='note'>{html.escape(t)}</p>" for t in s.text]
        if s.figure:
            data = base64.b64encode(s.figure.png).decode("ascii")
            alt = html.escape(s.figure.title, quote=True)
            parts.append(f'<p><img src="data:image/png;base64,{data}" alt="{alt}"></p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _notes(evals: list[ModelEval]) -> list[str]:
    out = []
    for e in evals:
        for bench, b in e.result.benchmarks.items():
            where = ", ".join(Path(p).name for p in b.data.get("paths") or [])
            out.append(f"{e.display} / {bench}: {b.counts.get('items')} items ({where})")
            out += [f"{e.display} / {bench}: {t}" for t in b.notes]
    return out


def build_sections(
    evals: list[ModelEval], iterations: list[IterationRow], losses: dict
) -> list[Section]:
    ci = (
        "Values: point estimate [95% bootstrap CI]; '-' = not evaluated, or undefined "
        "(e.g. no parsed scores)."
    )
    sections = [
        Section("Pointwise judging (paper Table 2)", metric_table(evals, TABLE_POINTWISE), [ci]),
        Section("Pairwise judging (paper Table 3)", metric_table(evals, TABLE_PAIRWISE), [ci]),
        Section("Parse-failure rate", parse_failure_table(evals)),
    ]
    sections = [s for s in sections if s.table]
    if figure := difference_histograms(evals):
        sections.append(Section("Predicted - gold (paper Figure 5)", figure=figure))
    if figure := score_distributions(evals):
        sections.append(Section("Score distributions", figure=figure))
    table = iteration_table(iterations)
    figure = loss_figure(losses)
    if table or figure:
        sections.append(Section("Iterations", table, figure=figure))
    if notes := _notes(evals):
        sections.append(Section("Evaluation data and notes", text=notes))
    return sections


def write_report(
    evals: list[ModelEval],
    out_dir: str | Path,
    *,
    title: str = "srjudge report: evaluations",
    iterations: list[IterationRow] | None = None,
    losses: dict[str, list[tuple[float, float]]] | None = None,
    extra: list[Section] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` (+ ``figures/*.png``) and ``report.html`` into ``out_dir``.

    ``extra`` sections (e.g. a human study's, ``annotation.report.study_sections``) come last.

    ``evals`` from ``results.find_evals`` (evaluation folders) or ``loop.rundir.run_evals``
    (a run, which also gives the ``iterations`` rows and training ``losses``).
    """
    iterations, losses = iterations or [], losses or {}
    if not evals and not iterations and not losses and not extra:
        raise FileNotFoundError("nothing to report: no evaluation, no iteration, no loss curve")
    sections = build_sections(evals, iterations, losses) + list(extra or [])
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for s in sections:
        if s.figure:
            (out / "figures" / f"{s.figure.name}.png").write_bytes(s.figure.png)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(render_markdown(title, sections), encoding="utf-8")
    html_path.write_text(render_html(title, sections), encoding="utf-8")
    return md_path, html_path
