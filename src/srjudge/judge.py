"""Run a judge: N judgments per example with bounded retries, the ``Judge`` API, ``judge_file``.

    from srjudge.judge import Judge
    judge = Judge.load("smollm2-135m")                    # backend="transformers" by default
    grade = judge.grade(example, samples=5)               # pointwise: majority + mean of 5
    cmp = judge.compare(pair, both_orders=True)           # pairwise, position swap checked

    srjudge judge --model smollm2-135m --input x.jsonl --output y.jsonl --samples 5

Sampling (``sample_judgments``): every completion is parsed (``parsing.parse_judgment``); an
unparseable one is re-sampled from the same prompt with a new, deterministically derived seed,
at most ``max_retries`` extra times. One that still fails is kept as a ``Judgment`` with
``verdict=None``, its ``parse_error`` and raw text: it is counted as a failure, never given a
default score. Retries of greedy decoding (temperature 0) would only repeat the same text, so
they sample at ``GREEDY_RETRY_TEMPERATURE``; each judgment records the temperature and seed
that produced it.

Aggregation (``majority_vote``): the most frequent parsed verdict. A tie goes to the tied
value closest to the mean of all parsed verdicts, and if that is still tied, to the one sampled
first (so a 1-vs-2 pairwise tie is not broken towards either position). ``mean`` is over
parsed verdicts only.

Output of ``judge_file``: one JSON line per example, in input order::

    {"id": "mt-1", "kind": "pointwise", "verdict": 4, "rationale": "...", "parse_error": null,
     "raw": "...", "attempts": 1, "counts": {"judgments": 1, "parse_failures": 0, "retries": 0}}

with ``samples`` (each judgment) and ``mean`` when samples > 1; ``consistent``,
``verdict_original_order``, ``verdict_swapped_order`` and ``swapped_samples`` (verdicts as
the model gave them, in the swapped order) with ``both_orders``; ``expected_score`` and
``score_probs`` with ``expected_score``. The file is written through ``ResumableJSONL``, so a
killed run continues on rerun; ``<output stem>.summary.json`` holds the counts over the whole
file and the provenance.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from srjudge import __version__
from srjudge.backends import Backend, SamplingParams, VerdictScorer, load_backend
from srjudge.parsing import ParseFailure, cut_at_end_of_turn, parse_judgment
from srjudge.prompts import judge_prompt, judge_template_id, template_hash
from srjudge.records import (
    Example,
    Judgment,
    Message,
    PairwiseExample,
    PointwiseExample,
    load_examples,
    read_jsonl,
)
from srjudge.resume import ResumableJSONL

GREEDY_RETRY_TEMPERATURE = 1.0
"""Temperature of the retries of a greedy (temperature 0) judgment that did not parse."""
DEFAULT_BATCH_SIZE = 8
RESULT_PREFIX = "[RESULT] "
_MARKER = re.compile(r"\[\s*RESULT\s*\]", re.IGNORECASE)


# ---------------------------------------------------------------------------------------
# sampling


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from ``seed`` and ``parts``, the same on every run.

    >>> derive_seed(0, "retry", 1) == derive_seed(0, "retry", 1) != derive_seed(0, "retry", 2)
    True
    """
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _batched(items: Iterable[Example], size: int) -> Iterator[list[Example]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _progress(total: int | None, enabled: bool, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="ex", disable=not enabled or not sys.stderr.isatty())


def _judgment(
    backend: Backend,
    example: Example,
    text: str,
    index: int,
    params: SamplingParams,
    *,
    score_only: bool,
    attempts: int,
    earlier_errors: list[str] | None = None,
) -> Judgment:
    parsed = parse_judgment(text, example.kind, require_rationale=not score_only)
    failed = isinstance(parsed, ParseFailure)
    return Judgment(
        example_id=example.id,
        mode=example.kind,
        raw=text,
        rationale=None if failed else parsed.rationale,
        verdict=None if failed else parsed.verdict,
        parse_error=parsed.reason if failed else None,
        sample_index=index,
        attempts=attempts,
        model=backend.name,
        template_id=judge_template_id(example.kind, score_only=score_only),
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed,
        meta={"earlier_parse_errors": earlier_errors} if earlier_errors else {},
    )


def _generate(
    backend: Backend, prompts: list[list[Message]], params: SamplingParams
) -> list[list[str]]:
    outputs = backend.generate(prompts, params)
    if len(outputs) != len(prompts) or any(len(texts) != params.n for texts in outputs):
        got = [len(texts) for texts in outputs]
        raise RuntimeError(
            f"backend {backend.name} returned {got} completions for {len(prompts)} prompts "
            f"with n={params.n}"
        )
    return outputs


def _judge_batch(
    backend: Backend,
    batch: list[Example],
    params: SamplingParams,
    *,
    score_only: bool,
    max_retries: int,
) -> list[list[Judgment]]:
    prompts = [judge_prompt(ex, score_only=score_only) for ex in batch]
    outputs = _generate(backend, prompts, params)
    results = [
        [
            _judgment(backend, ex, text, j, params, score_only=score_only, attempts=1)
            for j, text in enumerate(texts)
        ]
        for ex, texts in zip(batch, outputs, strict=True)
    ]
    for attempt in range(1, max_retries + 1):
        failed = {i: [j for j, jd in enumerate(js) if not jd.ok] for i, js in enumerate(results)}
        failed = {i: slots for i, slots in failed.items() if slots}
        if not failed:
            break
        _resample(backend, batch, prompts, results, failed, params, attempt, score_only)
    return results


def _resample(
    backend: Backend,
    batch: list[Example],
    prompts: list[list[Message]],
    results: list[list[Judgment]],
    failed: dict[int, list[int]],
    params: SamplingParams,
    attempt: int,
    score_only: bool,
) -> None:
    """Replace the failed judgments ``failed`` (example index -> sample indices) in place.

    One call per distinct failure count k asks n=k of each such prompt, so that the k
    re-samples of one prompt are distinct samples rather than one seed repeated.
    """
    by_count: dict[int, list[int]] = {}
    for i, slots in failed.items():
        by_count.setdefault(len(slots), []).append(i)
    for k, indices in sorted(by_count.items()):
        retry = replace(
            params,
            n=k,
            seed=derive_seed(params.seed, "retry", attempt, k),
            temperature=params.temperature or GREEDY_RETRY_TEMPERATURE,
        )
        outputs = _generate(backend, [prompts[i] for i in indices], retry)
        for i, texts in zip(indices, outputs, strict=True):
            for j, text in zip(failed[i], texts, strict=True):
                old = results[i][j]
                errors = [*old.meta.get("earlier_parse_errors", []), old.parse_error]
                results[i][j] = _judgment(
                    backend,
                    batch[i],
                    text,
                    j,
                    retry,
                    score_only=score_only,
                    attempts=attempt + 1,
                    earlier_errors=errors,
                )


def sample_judgments(
    backend: Backend,
    examples: Iterable[Example],
    params: SamplingParams,
    *,
    score_only: bool = False,
    max_retries: int = 2,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[tuple[Example, list[Judgment]]]:
    """For each example (in order), ``params.n`` judgments; see the module docstring.

    ``batch_size`` examples go to the backend per call. The progress bar shows only when
    ``progress`` is set and stderr is a terminal.
    """
    if max_retries < 0 or batch_size < 1:
        raise ValueError("max_retries must be >= 0 and batch_size >= 1")
    total = len(examples) if isinstance(examples, Sequence) else None
    with _progress(total, progress, "judging") as bar:
        for batch in _batched(examples, batch_size):
            results = _judge_batch(
                backend, batch, params, score_only=score_only, max_retries=max_retries
            )
            bar.update(len(batch))
            yield from zip(batch, results, strict=True)


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


def _mean(verdicts: Iterable[int | None]) -> float | None:
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
        backend: str = "transformers",
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
                ex.id, js, majority_vote(j.verdict for j in js), _mean(j.verdict for j in js)
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


# ---------------------------------------------------------------------------------------
# judge_file


@dataclass
class JudgeSummary:
    """Counts over the whole output file (earlier runs included) and this run's provenance."""

    examples: int
    """Examples in the input file."""
    written: int
    """Lines in the output file (== examples when complete)."""
    judged_this_run: int
    skipped_already_done: int
    judgments: int
    parse_failures: int
    """Judgments that still did not parse after their retries."""
    retries: int
    """Extra attempts spent re-sampling unparseable outputs."""
    no_verdict: int
    """Examples without a verdict (every judgment failed)."""
    consistent: int | None
    inconsistent: int | None
    seconds: float
    output: str
    summary_path: str
    provenance: dict[str, Any]

    @property
    def parse_rate(self) -> float | None:
        return None if not self.judgments else 1 - self.parse_failures / self.judgments

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parse_rate": self.parse_rate}

    def format(self) -> str:
        rate = "n/a" if self.parse_rate is None else f"{self.parse_rate:.1%}"
        lines = [
            f"examples: {self.examples} (judged now: {self.judged_this_run}, "
            f"already done: {self.skipped_already_done}, written: {self.written})",
            f"judgments: {self.judgments}, parse failures: {self.parse_failures} "
            f"(parse rate {rate}), retries: {self.retries}, no verdict: {self.no_verdict}",
        ]
        if self.consistent is not None:
            lines.append(f"order-consistent: {self.consistent}, inconsistent: {self.inconsistent}")
        lines.append(f"output: {self.output}  summary: {self.summary_path}  ({self.seconds:.1f}s)")
        return "\n".join(lines)


def summary_path(output_path: str | Path) -> Path:
    """``y.jsonl`` -> ``y.summary.json``."""
    return Path(output_path).with_suffix(".summary.json")


def _sample_dict(j: Judgment) -> dict[str, Any]:
    return {
        "sample_index": j.sample_index,
        "verdict": j.verdict,
        "rationale": j.rationale,
        "parse_error": j.parse_error,
        "raw": j.raw,
        "attempts": j.attempts,
        "temperature": j.temperature,
        "seed": j.seed,
        **({"meta": j.meta} if j.meta else {}),
    }


def _counts(judgments: list[Judgment]) -> dict[str, int]:
    return {
        "judgments": len(judgments),
        "parse_failures": sum(not j.ok for j in judgments),
        "retries": sum(j.attempts - 1 for j in judgments),
    }


def _record(ex: Example, result: Grade | Comparison, samples: int) -> dict[str, Any]:
    """One output line; see the module docstring."""
    js = result.judgments
    verdict = result.verdict
    rec: dict[str, Any] = {"id": ex.id, "kind": ex.kind, "verdict": verdict}
    if samples == 1:
        j = js[0]
        rec.update(rationale=j.rationale, parse_error=j.parse_error, raw=j.raw, attempts=j.attempts)
    else:
        errors = [j.parse_error for j in js if j.parse_error]
        rec.update(
            rationale=result.rationale,
            parse_error=None if verdict is not None else f"no sample parsed (first: {errors[0]})",
            mean=_mean(j.verdict for j in js),
            samples=[_sample_dict(j) for j in js],
        )
    if isinstance(result, Comparison) and result.swapped_judgments:
        if verdict is None and rec["parse_error"] is None:
            rec["parse_error"] = "no judgment parsed in either order"
        rec.update(
            consistent=result.consistent,
            verdict_original_order=result.majority,
            verdict_swapped_order=result.swapped_majority,
            swapped_samples=[_sample_dict(j) for j in result.swapped_judgments],
        )
    if isinstance(result, Grade) and result.score_probs is not None:
        rec.update(expected_score=result.expected_score, score_probs=result.score_probs)
    rec["model"] = js[0].model
    rec["template_id"] = js[0].template_id
    rec["counts"] = _counts(js + getattr(result, "swapped_judgments", []))
    return rec


def _check_ids(examples: list[Example], path: str | Path) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise ValueError(f"{path}: id {ex.id!r} appears twice; ids must be unique to resume")
        seen.add(ex.id)


def _file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def judge_file(
    input_path: str | Path,
    output_path: str | Path,
    judge_or_backend: Judge | Backend,
    *,
    samples: int = 1,
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int = 512,
    seed: int = 0,
    max_retries: int = 2,
    both_orders: bool = False,
    score_only: bool = False,
    expected_score: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> JudgeSummary:
    """Judge every example of a srjudge JSONL into ``output_path``, resumably.

    Examples whose id is already in ``output_path`` are skipped, so rerunning after a crash
    or ``kill -9`` finishes the file with every id exactly once. ``both_orders`` applies to
    pairwise examples, ``expected_score`` to pointwise ones. ``provenance`` is merged into the
    summary's provenance (the CLI adds the backend kind and model as given).
    """
    started = time.time()
    examples = load_examples(input_path)
    _check_ids(examples, input_path)
    backend = judge_or_backend.backend if isinstance(judge_or_backend, Judge) else judge_or_backend
    judge = Judge(backend, max_retries=max_retries, batch_size=batch_size, progress=False)
    params = Judge.params(samples, temperature, top_p, max_new_tokens, seed)
    common = dict(
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        score_only=score_only,
    )
    with ResumableJSONL(output_path) as out:
        todo = [ex for ex in examples if ex.id not in out.done]
        skipped = len(examples) - len(todo)
        with _progress(len(todo), progress, "judging") as bar:
            for chunk in _batched(todo, batch_size):
                points = [ex for ex in chunk if isinstance(ex, PointwiseExample)]
                pairs = [ex for ex in chunk if isinstance(ex, PairwiseExample)]
                results: dict[str, Grade | Comparison] = {}
                if points:
                    grades = judge.grade_batch(points, expected_score=expected_score, **common)
                    results.update((g.example_id, g) for g in grades)
                if pairs:
                    comparisons = judge.compare_batch(pairs, both_orders=both_orders, **common)
                    results.update((c.example_id, c) for c in comparisons)
                for ex in chunk:  # input order
                    out.append(_record(ex, results[ex.id], samples))
                bar.update(len(chunk))
    kinds = sorted({ex.kind for ex in examples})
    templates = {
        tid: template_hash(tid)
        for tid in (judge_template_id(k, score_only=score_only) for k in kinds)
    }
    info = {
        "model": backend.name,
        "templates": templates,
        "params": asdict(params),
        "samples": samples,
        "max_retries": max_retries,
        "both_orders": both_orders,
        "score_only": score_only,
        "expected_score": expected_score,
        "batch_size": batch_size,
        "seed": seed,
        "input": str(input_path),
        "input_sha256": _file_sha256(input_path),
        "srjudge_version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(provenance or {}),
    }
    return _summarize(output_path, len(examples), len(todo), skipped, time.time() - started, info)


def _summarize(
    output_path: str | Path,
    n_examples: int,
    judged: int,
    skipped: int,
    seconds: float,
    provenance: dict[str, Any],
) -> JudgeSummary:
    """Counts over every line of the output file, written to the summary file."""
    rows = list(read_jsonl(output_path))
    consistency = [r["consistent"] for r in rows if "consistent" in r]
    summary = JudgeSummary(
        examples=n_examples,
        written=len(rows),
        judged_this_run=judged,
        skipped_already_done=skipped,
        judgments=sum(r["counts"]["judgments"] for r in rows),
        parse_failures=sum(r["counts"]["parse_failures"] for r in rows),
        retries=sum(r["counts"]["retries"] for r in rows),
        no_verdict=sum(r["verdict"] is None for r in rows),
        consistent=sum(c is True for c in consistency) if consistency else None,
        inconsistent=sum(c is False for c in consistency) if consistency else None,
        seconds=round(seconds, 2),
        output=str(output_path),
        summary_path=str(summary_path(output_path)),
        provenance=provenance,
    )
    path = summary_path(output_path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return summary
