"""JudgeBench and RM-Bench rows -> pairwise examples: two benchmarks built to test judges.

    result = load_judgebench("../shared/data/judgebench/judgebench_gpt-4o-2024-05-13.jsonl")
    result = load_rm_bench("../shared/data/rm-bench/chat_filtered.json")
    cells = style_pairs(result.examples[0])     # RM-Bench: the 9 (chosen, rejected) style pairs
    srjudge data convert IN --format judgebench --out OUT.jsonl

**JudgeBench** (ScalerLab, ICLR 2025) rows (``pair_id, original_id, source, question,
response_model, response_A, response_B, label``) become one pairwise example each: response 1
is ``response_A``, ``label`` 'A>B' -> gold 1, 'B>A' -> gold 2. ``source`` ('mmlu-pro-law',
'livebench-reasoning', 'livebench-math', 'livecodebench') maps to the paper's four categories
(``JUDGEBENCH_CATEGORIES``), kept in ``meta["category"]``. JudgeBench ships no rubric: the
criterion is the one JudgeBench itself gave Prometheus 2 ("Are the model's responses factually
correct and well-supported by evidence?", ``CORRECTNESS_RUBRIC``), since its labels are
objective correctness.

**RM-Bench** (THU-KEG, ICLR 2025) rows (``id, subset, prompt, chosen[3], rejected[3]``) hold
three chosen and three rejected responses in the styles of ``RM_BENCH_STYLES`` (concise,
detailed plain text, detailed markdown). One example per prompt: ``meta["chosen"]`` and
``meta["rejected"]`` keep all six, in style order, and ``response_1``/``response_2`` are the
concise pair (cell (0, 0)), so a converted file is a valid pairwise file and loses nothing.
``style_pairs`` expands an example into its 9 cells, the comparisons RM-Bench scores. The
domain comes from ``domain`` when the row has it (``total_dataset.json``), else from
``subset`` (``RM_BENCH_SUBSET_DOMAINS``). RM-Bench ships no rubric either: the generic
helpfulness/harmlessness/honesty rubric of the paper's A.1.3 (``REWARDBENCH_RUBRIC``), since
RM-Bench draws its prompts from the same sources as RewardBench (AlpacaEval, HumanEvalPack,
XSTest, refusals) and its safety-response split rewards helpful answers to safe requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srjudge.data.fields import as_object, required_field, short_hash, strings_field, text_field
from srjudge.data.readers import LoadResult, load_rows
from srjudge.data.rubrics import CORRECTNESS_RUBRIC, REWARDBENCH_RUBRIC
from srjudge.records import Message, PairwiseExample, Preference, RecordError

# ---------------------------------------------------------------------------------------
# JudgeBench

JUDGEBENCH_CATEGORIES: tuple[str, ...] = ("knowledge", "reasoning", "math", "coding")
_JUDGEBENCH_SOURCES: dict[str, str] = {
    "livebench-reasoning": "reasoning",
    "livebench-math": "math",
    "livecodebench": "coding",
}
_JUDGEBENCH_LABELS: dict[str, Preference] = {"A>B": 1, "B>A": 2}


def judgebench_category(source: str) -> str:
    """The JudgeBench category of a ``source`` value; ``RecordError`` for an unknown one.

    >>> judgebench_category("mmlu-pro-computer science"), judgebench_category("livecodebench")
    ('knowledge', 'coding')
    """
    if source.startswith("mmlu-pro-"):
        return "knowledge"
    if source in _JUDGEBENCH_SOURCES:
        return _JUDGEBENCH_SOURCES[source]
    raise RecordError(
        "source",
        f"unknown JudgeBench source {source!r}; expected mmlu-pro-<subject>, "
        f"{', '.join(_JUDGEBENCH_SOURCES)}",
    )


def _judgebench(row: Any, line: int) -> PairwiseExample:
    row = as_object(row)
    label = required_field(row, "label")
    if not isinstance(label, str) or label not in _JUDGEBENCH_LABELS:
        raise RecordError("label", f"expected 'A>B' or 'B>A', got {label!r}")
    source = text_field(row, "source")
    question = text_field(row, "question")
    return PairwiseExample(
        id=f"judgebench-{text_field(row, 'pair_id')}",
        context=[Message("user", question)],
        response_1=text_field(row, "response_A"),
        response_2=text_field(row, "response_B"),
        rubric=CORRECTNESS_RUBRIC,
        gold_preference=_JUDGEBENCH_LABELS[label],
        source="judgebench",
        meta={
            "question_id": "jb-" + short_hash(question),
            "category": judgebench_category(source),
            "judgebench_source": source,
            "response_model": text_field(row, "response_model"),
            "original_id": row.get("original_id"),
        },
    )


def load_judgebench(path: str | Path) -> LoadResult:
    """JudgeBench ``judgebench_<response model>.jsonl`` -> pairwise (gold 1 or 2)."""
    return load_rows(path, "judgebench", _judgebench)


# ---------------------------------------------------------------------------------------
# RM-Bench

RM_BENCH_STYLES: tuple[str, ...] = ("concise", "detailed_plain", "detailed_markdown")
"""Index order of ``chosen`` and ``rejected`` in every RM-Bench row."""
RM_BENCH_DOMAINS: tuple[str, ...] = ("chat", "math", "code", "safety-refuse", "safety-response")
RM_BENCH_SUBSET_DOMAINS: dict[str, str] = {
    "alpacaeval": "chat",
    "bigcode/humanevalpack": "code",
    "xstest-should-refuse": "safety-refuse",
    "refusals-dangerous": "safety-refuse",
    "refusals-offensive": "safety-refuse",
    "xstest-should-respond": "safety-response",
}
"""Subsets seen in the four RM-Bench domain files here (math's file is absent)."""


def _rm_bench_domain(row: dict[str, Any], subset: str) -> str:
    if row.get("domain") is not None:
        domain = row["domain"]
        if domain not in RM_BENCH_DOMAINS:
            raise RecordError("domain", f"expected one of {', '.join(RM_BENCH_DOMAINS)}")
        return domain
    if subset not in RM_BENCH_SUBSET_DOMAINS:
        raise RecordError(
            "subset",
            f"unknown RM-Bench subset {subset!r} and no 'domain' field; known subsets: "
            f"{', '.join(RM_BENCH_SUBSET_DOMAINS)}",
        )
    return RM_BENCH_SUBSET_DOMAINS[subset]


def _rm_bench(row: Any, line: int) -> PairwiseExample:
    row = as_object(row)
    rid = required_field(row, "id")
    if isinstance(rid, bool) or not isinstance(rid, int | str) or not str(rid).strip():
        raise RecordError("id", f"expected an integer or a non-empty string, got {rid!r}")
    subset = text_field(row, "subset")
    domain = _rm_bench_domain(row, subset)
    prompt = text_field(row, "prompt")
    chosen = strings_field(row, "chosen", len(RM_BENCH_STYLES))
    rejected = strings_field(row, "rejected", len(RM_BENCH_STYLES))
    meta: dict[str, Any] = {
        "question_id": "rmb-" + short_hash(prompt),
        "domain": domain,
        "subset": subset,
        "rmbench_id": rid,
        "chosen": list(chosen),
        "rejected": list(rejected),
    }
    for key in ("language", "task_id"):  # code rows
        if isinstance(row.get(key), str):
            meta[key] = row[key]
    return PairwiseExample(
        # ids restart in each domain file (chat and code both have id 8)
        id=f"rm-bench-{domain}-{rid}",
        context=[Message("user", prompt)],
        response_1=chosen[0],
        response_2=rejected[0],
        rubric=REWARDBENCH_RUBRIC,
        gold_preference=1,
        source="rm-bench",
        meta=meta,
    )


def load_rm_bench(path: str | Path) -> LoadResult:
    """RM-Bench ``<domain>_filtered.json`` or ``total_dataset.json`` -> one example per prompt."""
    return load_rows(path, "rm-bench", _rm_bench)


def style_pairs(example: PairwiseExample) -> list[tuple[int, int, PairwiseExample]]:
    """The 9 cells of an RM-Bench example: ``(i, j, pair)`` with chosen style ``i`` as
    response 1 and rejected style ``j`` as response 2 (gold 1), ``i`` and ``j`` indexing
    ``RM_BENCH_STYLES``; row-major order, so cell (0, 2) is concise chosen vs markdown rejected.
    """
    chosen, rejected = example.meta.get("chosen"), example.meta.get("rejected")
    n = len(RM_BENCH_STYLES)
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise ValueError(f"{example.id}: not an RM-Bench example (no meta chosen/rejected)")
    if len(chosen) != n or len(rejected) != n:
        raise ValueError(f"{example.id}: expected {n} chosen and {n} rejected responses")
    return [
        (
            i,
            j,
            PairwiseExample(
                id=f"{example.id}#c{i}r{j}",
                context=list(example.context),
                response_1=chosen[i],
                response_2=rejected[j],
                rubric=example.rubric,
                gold_preference=1,
                source=example.source,
                meta={"pair_id": example.id, "chosen_style": i, "rejected_style": j},
            ),
        )
        for i in range(n)
        for j in range(n)
    ]
