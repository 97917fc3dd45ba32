"""Meta-judge stages: the model calls behind the meta-judge curation strategies.

Each function prompts a backend (the current judge J_t rating itself, or any other
``Backend``), parses the answers with ``srjudge.judging.parsing``, re-asks only the prompts whose
answer did not parse (at most ``max_retries`` more rounds, one batched ``generate`` call per
round, a new seed each round so a seeded sampler does not repeat the same failure), and
returns plain values that ``srjudge.training.curate`` turns into pairs:

    ratings = rate_judgments(backend, example, judgments, params)      # A.1.4: [4, None, 2]
    pairs = curate(example, judgments, CurationConfig("meta_judge"), ratings=ratings).pairs

    best_worst = pick_best_worst(backend, example, judgments, params)  # A.1.6: BestWorst(3, 1)
    low = write_low_quality(backend, example, 2, params)               # A.1.5: ["It is ok.", ...]

An answer that never parses stays ``None`` (or is dropped): it is never given a default
rating, and ``curate`` counts it (``CurationStats.meta_failures``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from srjudge.judging.backends import Backend, SamplingParams
from srjudge.judging.parsing import (
    BestWorst,
    Parsed,
    parse_best_worst,
    parse_judgment,
    parse_meta_rating,
)
from srjudge.judging.prompts import meta_rating_prompt, rationale_meta_prompt, reversal_prompt
from srjudge.records import Example, Judgment, Message, PointwiseExample
from srjudge.training.curate import usable

log = logging.getLogger(__name__)
T = TypeVar("T")


def _ask(
    backend: Backend,
    prompts: Sequence[Sequence[Message]],
    params: SamplingParams,
    parse: Callable[[str], T | None],
    max_retries: int,
) -> list[T | None]:
    """One parsed answer per prompt (None if no round parsed); unparsed prompts are re-asked."""
    results: list[T | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(max_retries + 1):
        if not todo:
            break
        # One answer per prompt is all we read, so n=1 whatever the caller's params say.
        round_params = replace(params, n=1, seed=params.seed + attempt)
        outputs = backend.generate([prompts[i] for i in todo], round_params)
        for i, texts in zip(todo, outputs, strict=True):
            results[i] = parse(texts[0])
        todo = [i for i in todo if results[i] is None]
    if todo:
        log.info("meta-judge: %d of %d answers unparseable after retries", len(todo), len(prompts))
    return results


def _rating(text: str) -> int | None:
    parsed = parse_meta_rating(text)
    return parsed.verdict if isinstance(parsed, Parsed) else None


def rate_judgments(
    backend: Backend,
    example: Example,
    judgments: Sequence[Judgment],
    params: SamplingParams,
    *,
    max_retries: int = 2,
) -> list[int | None]:
    """A.1.4 rating 1..5 of each judgment, aligned with ``judgments``.

    Unparseable judgments are not shown to the meta-judge and get None, like a rating that
    never parsed.
    """
    ok_index = [i for i, j in enumerate(judgments) if j.ok]
    prompts = [meta_rating_prompt(example, judgments[i].raw.strip()) for i in ok_index]
    ratings: list[int | None] = [None] * len(judgments)
    for i, rating in zip(
        ok_index, _ask(backend, prompts, params, _rating, max_retries), strict=True
    ):
        ratings[i] = rating
    return ratings


def pick_best_worst(
    backend: Backend,
    example: Example,
    judgments: Sequence[Judgment],
    params: SamplingParams,
    *,
    max_retries: int = 2,
) -> BestWorst | None:
    """A.1.6 best and worst rationale; ITEMk is the k-th of ``curate.usable(judgments)``.

    None when fewer than two judgments parsed (nothing to compare; no call is made) or when
    no answer parsed.
    """
    ok = usable(judgments)
    if len(ok) < 2:
        return None
    prompt = rationale_meta_prompt(example, [j.rationale or "" for j in ok])

    def parse(text: str) -> BestWorst | None:
        picked = parse_best_worst(text, len(ok))
        return picked if isinstance(picked, BestWorst) else None

    return _ask(backend, [prompt], params, parse, max_retries)[0]


def _low_quality_rationale(text: str) -> str | None:
    # A.1.5 asks for "(rationale) [RESULT] (1-5)" for any example, hence pointwise parsing;
    # the child's score is dropped because curation puts the gold verdict in its place.
    parsed = parse_judgment(text, "pointwise")
    return parsed.rationale if isinstance(parsed, Parsed) else None


def write_low_quality(
    backend: Backend,
    example: Example,
    n: int,
    params: SamplingParams,
    *,
    max_retries: int = 2,
) -> list[str]:
    """Up to ``n`` low-quality rationales (A.1.5), verdict stripped; only answers that parse.

    The A.1.5 prompt shows one response, so a pairwise example gets ``[]`` (no call), which
    ``curate`` counts as ``no_low_quality``.
    """
    if not isinstance(example, PointwiseExample):
        return []
    prompt = reversal_prompt(example)
    kept: list[str] = []
    for attempt in range(max_retries + 1):
        missing = n - len(kept)
        if missing <= 0:
            break
        round_params = replace(params, n=missing, seed=params.seed + attempt)
        texts = backend.generate([prompt], round_params)[0]
        kept += [r for r in map(_low_quality_rationale, texts) if r]
    return kept[:n]
