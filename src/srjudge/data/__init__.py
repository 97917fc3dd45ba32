"""Data: source datasets and benchmarks -> srjudge records; nothing model-specific.

Every loader is a plain function ``load_X(path) -> LoadResult`` listed in ``LOADERS`` by name,
so evaluation and the CLI pick one by name::

    from srjudge import data
    result = data.LOADERS["rewardbench"]("../shared/data/reward-bench/Chat.jsonl")
    result.examples   # PairwiseExample list, ``source`` and ``meta`` filled in
    result.errors     # RowError(file, line, field, message) for each row that was not loaded

Modules (this file only re-exports their public names):

* ``readers``: bytes -> raw rows (``read_rows``: JSONL, ``.gz``, JSON arrays, parquet, Hub ids)
  and ``load_rows`` (a converter applied to each row; bad rows become ``RowError``s);
* ``fields``: row field helpers that raise ``RecordError`` naming the source field;
  ``question_key`` and ``prompt_text``;
* ``rubrics``: rubrics for benchmarks that ship none;
* ``sources``: one converter per source format, the ``LOADERS`` table, bundled slices;
* ``validate``: ``validate_file`` (report + quarantine);
* ``overlap``: ``find_overlap`` (contamination check);
* ``derive``: ``derive_pairwise`` (pairwise data from pointwise gold scores), ``split_by_question``.
"""

from srjudge.data.derive import derive_pairwise, pairwise_rationale, split_by_question
from srjudge.data.fields import parse_rubric_text, prompt_text, question_key
from srjudge.data.judge_benchmarks import load_judgebench, load_rm_bench, style_pairs
from srjudge.data.overlap import OverlapReport, find_overlap, normalize
from srjudge.data.readers import LoadResult, RawRow, RowError, load_rows, read_rows
from srjudge.data.rubrics import HELPFULNESS_RUBRIC, REWARDBENCH_RUBRIC, SAFETY_RUBRIC
from srjudge.data.sources import (
    BUNDLED,
    LOADERS,
    bundled_path,
    load,
    load_autoj_pairwise,
    load_biggen_human,
    load_bundled,
    load_feedback_collection,
    load_mt_bench,
    load_preference_collection,
    load_rewardbench,
    load_safe_rlhf,
    load_srjudge,
    load_vicuna_bench,
    parse_dialogue,
    parse_prometheus_prompt,
)
from srjudge.data.validate import ValidationReport, quarantine_record, validate_file

__all__ = [
    "BUNDLED",
    "HELPFULNESS_RUBRIC",
    "LOADERS",
    "REWARDBENCH_RUBRIC",
    "SAFETY_RUBRIC",
    "LoadResult",
    "OverlapReport",
    "RawRow",
    "RowError",
    "ValidationReport",
    "bundled_path",
    "derive_pairwise",
    "find_overlap",
    "load",
    "load_autoj_pairwise",
    "load_biggen_human",
    "load_bundled",
    "load_feedback_collection",
    "load_judgebench",
    "load_mt_bench",
    "load_preference_collection",
    "load_rewardbench",
    "load_rm_bench",
    "load_rows",
    "load_safe_rlhf",
    "load_srjudge",
    "load_vicuna_bench",
    "normalize",
    "pairwise_rationale",
    "parse_dialogue",
    "parse_prometheus_prompt",
    "parse_rubric_text",
    "prompt_text",
    "question_key",
    "quarantine_record",
    "read_rows",
    "split_by_question",
    "style_pairs",
    "validate_file",
]
