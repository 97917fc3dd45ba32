"""Judging: prompts, parsing, backends, N judgments per input, the ``Judge`` API, judge_file.

    from srjudge.judging import Judge
    judge = Judge.load("smollm2-135m")                    # backend="auto" by default
    grade = judge.grade(example, samples=5)               # pointwise: majority + mean of 5

Modules (this file only re-exports their public names):

* ``prompts/``: Jinja2 judge and meta-judge templates, ``judge_prompt``, template hashes;
* ``parsing``: pure: judge text -> ``Parsed`` or ``ParseFailure``;
* ``backends/``: the ``Backend`` Protocol, ``SamplingParams``, mock/transformers/vLLM/OpenAI;
* ``sampling``: N judgments per input with bounded retries (``sample_judgments``), the
  sampling stage's file (``sample_to_file``, ``load_judgments``, ``select_inputs``);
* ``judge``: aggregation (``majority_vote``), ``Grade``, ``Comparison`` and ``Judge``;
* ``files``: ``judge_file`` (a JSONL judged resumably) and its ``JudgeSummary``.
"""

from srjudge.judging.backends import (
    BACKENDS,
    Backend,
    MockBackend,
    SamplingParams,
    VerdictScorer,
    load_backend,
)
from srjudge.judging.files import JudgeSummary, judge_file
from srjudge.judging.judge import Comparison, Grade, Judge, majority_vote
from srjudge.judging.sampling import sample_judgments

__all__ = [
    "BACKENDS",
    "Backend",
    "Comparison",
    "Grade",
    "Judge",
    "JudgeSummary",
    "MockBackend",
    "SamplingParams",
    "VerdictScorer",
    "judge_file",
    "load_backend",
    "majority_vote",
    "sample_judgments",
]
