"""The ``Judge`` API: pointwise ``grade`` and pairwise ``compare`` over any backend.

    from srjudge.judging import Judge
    judge = Judge.load("smollm2-135m")                    # backend="auto" by default
    grade = judge.grade(example, samples=5)               # pointwise: majority + mean of 5
    cmp = judge.compare(pair, both_orders=True)           # pairwise, position swap checked

Aggregation (``majority_vote``): the most frequent parsed verdict. A tie goes to the tied
value closest to the mean of all parsed verdicts, and if that is still tied, to the one sampled
first (so a 1-vs-2 pairwise tie is not broken towards either position). ``mean`` is over
parsed verdicts only. Expected-score mode (``expected_score=True``, a ``VerdictScorer``
backend) adds P(1..5) after "[RESULT] " and their expectation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from srjudge.judging.backends import (
    DEFAULT_BACKEND,
    Backend,
    SamplingParams,
    VerdictScorer,
    load_backend,
)
from srjudge.judging.parsing import cut_at_end_of_turn
from srjudge.judging.prompts import judge_prompt
from srjudge.judging.sampling import DEFAULT_BATCH_SIZE, sample_judgments
from srjudge.records import (
    Example,
    Judgment,
    PairwiseExample,
    PointwiseExample,
)

RESULT_PREFIX = "[RESULT] "
_MARKER = re.compile(r"\[\s*RESULT\s*\]", re.IGNORECASE)


# ---------------------------------------------------------------------------------------
# aggregation


def majority_vote(verdicts: Iterable[int | None]) -> int | None:
    """Most frequent verdict, ``None`` ignored; ties as in the module docstring.

    >>> majority_vote([4, 4, 2, None])
    4
    >>> majority_vote([2, 5, 3, 3, 5])   # 3 and 5 tie; the mean is 3.6, closer to 3
    3
    >>> majority_vote([2, 1])           # equally close to the mean 1.5: sampled first
    2
    >>> majority_vote([None]) is None
    True
    """
    parsed = [v for v in verdicts if v is not None]
    if not parsed:
        return None
    counts = Counter(parsed)
    top = max(counts.values())
    tied = [v for v in dict.fromkeys(parsed) if counts[v] == top]  # in first-sampled order
    mean = sum(parsed) / len(parsed)
    return min(tied, key=lambda v: abs(v - mean))  # min keeps the first of equal keys


def mean_verdict(verdicts: Iterable[int | None]) -> float | None:
    parsed = [v for v in verdicts if v is not None]
    return sum(parsed) / len(parsed) if parsed else None


def _agreeing_rationale(judgments: list[Judgment], verdict: int | None) -> Judgment | None:
    return next((j for j in judgments if j.ok and j.verdict == verdict), None)


@dataclass
class Grade:
    """A pointwise grade: every judgment, the majority verdict and the mean over parsed ones.

    ``expected_score`` / ``score_probs`` (P(1..5) after "[RESULT] ", averaged over parsed
    judgments) are set in expected-score mode only.
    """

    example_id: str
    judgments: list[Judgment]
    majority: int | None
    mean: float | None
    expected_score: float | None = None
    score_probs: list[float] | None = None

    @property
    def verdict(self) -> int | None:
        return self.majority

    @property
    def rationale(self) -> str | None:
        """The rationale of the first judgment that agrees with the majority."""
        j = _agreeing_rationale(self.judgments, self.majority)
        return None if j is None else j.rationale

    @property
    def parse_failures(self) -> int:
        return sum(not j.ok for j in self.judgments)


@dataclass
class Comparison:
    """A pairwise judgment. Preferences are in the example's own order (1 = ``response_1``).

    With ``both_orders``, ``swapped_judgments`` are the judgments of the example with the two
    responses exchanged (their verdicts as the model gave them, i.e. in the swapped order);
    ``swapped_majority`` is their majority mapped back to the original order. ``consistent``
    says whether both orders agree; it is ``None`` when only one order was judged or either
    order has no parsed verdict. ``verdict`` is the majority over the votes of both orders
    (swapped votes mapped back), ties broken as in ``majority_vote``.
    """

    example_id: str
    judgments: list[Judgment]
    majority: int | None
    swapped_judgments: list[Judgment] = field(default_factory=list)
    swapped_majority: int | None = None
    consistent: bool | None = None
    verdict: int | None = None

    @property
    def rationale(self) -> str | None:
        j = _agreeing_rationale(self.judgments, self.verdict)
        return None if j is None else j.rationale

    @property
    def parse_failures(self) -> int:
        return sum(not j.ok for j in self.judgments + self.swapped_judgments)


def _flip(verdict: int | None) -> int | None:
    return None if verdict is None else 3 - verdict


def swapped(example: PairwiseExample) -> PairwiseExample:
    """The example with its two responses exchanged (and its gold preference mapped)."""
    gold = example.gold_preference
    return replace(
        example,
        response_1=example.response_2,
        response_2=example.response_1,
        gold_preference=gold if gold in (None, "tie") else 3 - gold,
        meta={**example.meta, "order": "swapped"},
    )


def _comparison(ex: PairwiseExample, judgments: list[Judgment], swapped_js: list[Judgment] | None):
    majority = majority_vote(j.verdict for j in judgments)
    if swapped_js is None:
        return Comparison(ex.id, judgments, majority, verdict=majority)
    for j in swapped_js:
        j.meta["order"] = "swapped"
    swapped_majority = _flip(majority_vote(j.verdict for j in swapped_js))
    both = [j.verdict for j in judgments] + [_flip(j.verdict) for j in swapped_js]
    consistent = None
    if majority is not None and swapped_majority is not None:
        consistent = majority == swapped_majority
    return Comparison(
        ex.id, judgments, majority, swapped_js, swapped_majority, consistent, majority_vote(both)
    )


# ---------------------------------------------------------------------------------------
# expected score


def score_prefix(raw: str) -> str | None:
    """The judgment's text up to its verdict, ending in "[RESULT] ", or None without a marker.

    >>> score_prefix("Polite and correct. [RESULT] 4<|im_end|>")
    'Polite and correct. [RESULT] '
    """
    text = cut_at_end_of_turn(raw)
    markers = list(_MARKER.finditer(text))
    return text[: markers[-1].start()] + RESULT_PREFIX if markers else None


def _expected(
    backend: VerdictScorer, example: Example, judgments: list[Judgment], score_only: bool
):
    """(expected score, probabilities of 1..k) averaged over the parsed judgments."""
    options = ["1", "2", "3", "4", "5"] if example.kind == "pointwise" else ["1", "2"]
    prompt = judge_prompt(example, score_only=score_only)
    rows = []
    for j in judgments:
        prefix = score_prefix(j.raw) if j.ok else None
        if prefix is not None:
            rows.append(backend.option_probs(prompt, prefix, options))
    if not rows:
        return None, None
    probs = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
    return sum((i + 1) * p for i, p in enumerate(probs)), probs


# ---------------------------------------------------------------------------------------
# the Judge API


class Judge:
    """A judge over any ``Backend``: pointwise ``grade`` and pairwise ``compare``.

    Temperature defaults to 0 (greedy) for one sample and 1.0 for several (self-consistency).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_retries: int = 2,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
    ):
        self.backend = backend
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.progress = progress

    @classmethod
    def load(
        cls,
        model: str = "smollm2-135m",
        backend: str = DEFAULT_BACKEND,
        *,
        max_retries: int = 2,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **options: Any,
    ) -> Judge:
        """Build the backend with ``load_backend(backend, model, **options)``."""
        backend_ = load_backend(backend, model, **options)
        return cls(backend_, max_retries=max_retries, batch_size=batch_size)

    @staticmethod
    def params(
        samples: int = 1,
        temperature: float | None = None,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        seed: int = 0,
    ) -> SamplingParams:
        """``SamplingParams`` with the default temperature for ``samples``."""
        if temperature is None:
            temperature = 0.0 if samples == 1 else 1.0
        return SamplingParams(samples, temperature, top_p, max_new_tokens, seed)

    def _sample(self, examples: list[Example], params: SamplingParams, score_only: bool):
        return [
            js
            for _, js in sample_judgments(
                self.backend,
                examples,
                params,
                score_only=score_only,
                max_retries=self.max_retries,
                progress=self.progress,
                batch_size=self.batch_size,
            )
        ]

    def grade_batch(
        self,
        examples: Sequence[PointwiseExample],
        *,
        samples: int = 1,
        temperature: float | None = None,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        seed: int = 0,
        score_only: bool = False,
        expected_score: bool = False,
    ) -> list[Grade]:
        """Grade pointwise examples; ``expected_score`` needs a ``VerdictScorer`` backend."""
        examples = list(examples)
        for ex in examples:
            if not isinstance(ex, PointwiseExample):
                raise TypeError(f"grade needs pointwise examples; {ex.id!r} is {ex.kind}")
        if expected_score and not isinstance(self.backend, VerdictScorer):
            raise TypeError(
                f"expected_score needs a backend that reads token probabilities "
                f"(transformers); {self.backend.name} cannot"
            )
        params = self.params(samples, temperature, top_p, max_new_tokens, seed)
        grades = []
        for ex, js in zip(examples, self._sample(examples, params, score_only), strict=True):
            grade = Grade(
                ex.id, js, majority_vote(j.verdict for j in js), mean_verdict(j.verdict for j in js)
            )
            if expected_score:
                grade.expected_score, grade.score_probs = _expected(
                    self.backend, ex, js, score_only
                )
            grades.append(grade)
        return grades

    def grade(self, example: PointwiseExample, **kwargs: Any) -> Grade:
        """Grade one pointwise example; keyword arguments as in ``grade_batch``."""
        return self.grade_batch([example], **kwargs)[0]

    def compare_batch(
        self,
        examples: Sequence[PairwiseExample],
        *,
        samples: int = 1,
        both_orders: bool = False,
        temperature: float | None = None,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        seed: int = 0,
        score_only: bool = False,
    ) -> list[Comparison]:
        """Compare pairwise examples; with ``both_orders`` each is judged swapped too."""
        examples = list(examples)
        for ex in examples:
            if not isinstance(ex, PairwiseExample):
                raise TypeError(f"compare needs pairwise examples; {ex.id!r} is {ex.kind}")
        params = self.params(samples, temperature, top_p, max_new_tokens, seed)
        if not both_orders:
            results = self._sample(examples, params, score_only)
            return [_comparison(ex, js, None) for ex, js in zip(examples, results, strict=True)]
        # Interleave each example with its swap so that both land in the same batch.
        todo = [e for ex in examples for e in (ex, swapped(ex))]
        results = self._sample(todo, params, score_only)
        return [
            _comparison(ex, results[2 * i], results[2 * i + 1]) for i, ex in enumerate(examples)
        ]

    def compare(self, example: PairwiseExample, **kwargs: Any) -> Comparison:
        """Compare one pairwise example; keyword arguments as in ``compare_batch``."""
        return self.compare_batch([example], **kwargs)[0]
