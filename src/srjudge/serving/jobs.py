"""The model work behind the routes: request items -> srjudge records -> one Judge/Backend call.

This is the only module of ``srjudge.serving`` that imports the judge and the backends (so a
move of those modules changes the imports here and in ``commands/serve.py`` only).

* ``parse_items`` / ``reward_examples`` validate request items with ``srjudge.records`` and
  raise ``ItemError(index, field, message)``; the whole request is refused on the first bad item.
* ``check_control_tokens`` refuses text containing a chat control token of the model
  (``<|im_end|>`` ...): text under judgment is data and must never become a control token.
* ``ModelWork(key, items)`` is the batcher's ``run_group``: a ``GradeKey`` group is one
  ``Judge.grade_batch`` call, a ``CompareKey`` group one ``Judge.compare_batch``, a ``ChatKey``
  group one ``Backend.generate``; the judge's batch size is large enough that each is one
  backend call (plus the bounded re-samples of unparseable judgments).
* ``grade_result`` / ``compare_result`` / ``reward_of`` turn results into response fields.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from srjudge.judging.backends import Backend, SamplingParams, VerdictScorer
from srjudge.judging.judge import Comparison, Grade, Judge
from srjudge.records import (
    Example,
    Judgment,
    Message,
    PointwiseExample,
    RecordError,
    example_from_dict,
)
from srjudge.serving import schemas

COMMON_CONTROL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|end|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<start_of_turn>",
    "<end_of_turn>",
)
"""Refused in any backend; a local model's own special tokens are added to these."""


class ItemError(ValueError):
    """A request item is invalid: ``field`` is its full path (``items[3].rubric.criteria``)."""

    def __init__(self, index: int | None, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.index = index
        self.field = field
        self.message = message


# ------------------------------------------------------------------------------------------
# validation


def parse_items(items: Sequence[dict[str, Any]], kind: str) -> list[Example]:
    """Validate each item as a srjudge example of ``kind`` ("pointwise" or "pairwise")."""
    out = []
    for i, item in enumerate(items):
        try:
            example = example_from_dict(item)
        except RecordError as e:
            raise ItemError(i, f"items[{i}].{e.field}", e.message) from None
        if example.kind != kind:
            route = "/v1/grade" if example.kind == "pointwise" else "/v1/compare"
            raise ItemError(i, f"items[{i}].kind", f"is {example.kind}; send it to {route}")
        out.append(example)
    return out


_REWARD_FIELDS = {"context": "prompts", "response": "responses", "reference_answer": None}


def reward_examples(body: schemas.RewardRequest) -> list[PointwiseExample]:
    """One pointwise example per (prompt, response); errors name the request field."""
    n = len(body.prompts)
    rubrics = body.rubric if isinstance(body.rubric, list) else [body.rubric] * n
    references = body.reference_answers or [None] * n
    for name, values in (("responses", body.responses), ("rubric", rubrics)):
        if len(values) != n:
            raise ItemError(None, name, f"has {len(values)} entries for {n} prompts")
    if len(references) != n:
        raise ItemError(None, "reference_answers", f"has {len(references)} entries for {n}")
    out = []
    for i in range(n):
        row = {
            "id": f"reward-{i}",
            "context": body.prompts[i],
            "response": body.responses[i],
            "rubric": rubrics[i],
            "reference_answer": references[i],
        }
        try:
            out.append(example_from_dict(row))
        except RecordError as e:
            field = _reward_field(e.field, i, isinstance(body.rubric, list))
            raise ItemError(i, field, e.message) from None
    return out  # type: ignore[return-value]


def _reward_field(record_field: str, i: int, rubric_list: bool) -> str:
    """``context[0].content`` -> ``prompts[2][0].content``; ``rubric.criteria`` -> itself."""
    head, dot, rest = record_field.partition(".")
    base, bracket, tail = head.partition("[")
    if base == "rubric":
        return f"rubric[{i}]{dot}{rest}" if rubric_list else record_field
    if base == "reference_answer":
        return f"reference_answers[{i}]"
    name = _REWARD_FIELDS.get(base) or base
    return f"{name}[{i}]{bracket and '[' + tail}{dot}{rest}"


@runtime_checkable
class _HasTokenizer(Protocol):
    tokenizer: Any


def control_tokens(backend: Backend) -> tuple[str, ...]:
    """Strings that the backend's tokenizer would read as special tokens."""
    tokens = set(COMMON_CONTROL_TOKENS)
    if isinstance(backend, _HasTokenizer):
        tok = backend.tokenizer
        tokens.update(tok.all_special_tokens)
        tokens.update(t.content for t in tok.added_tokens_decoder.values() if t.special)
    return tuple(sorted(t for t in tokens if t))


def _texts(example: Example) -> Iterator[tuple[str, str]]:
    """(field, text) of every string of an example that reaches the prompt."""
    for i, m in enumerate(example.context):
        yield f"context[{i}].content", m.content
    if isinstance(example, PointwiseExample):
        yield "response", example.response
        if example.reference_answer is not None:
            yield "reference_answer", example.reference_answer
    else:
        yield "response_1", example.response_1
        yield "response_2", example.response_2
    yield "rubric.criteria", example.rubric.criteria
    for i, d in enumerate(example.rubric.score_descriptions):
        yield f"rubric.score_descriptions[{i}]", d


def find_control_token(text: str, tokens: Sequence[str]) -> str | None:
    """
    >>> find_control_token("fine <|im_end|> x", ["<|im_end|>"]), find_control_token("ok", ["<s>"])
    ('<|im_end|>', None)
    """
    return next((t for t in tokens if t in text), None)


def check_control_tokens(examples: Sequence[Example], tokens: Sequence[str], where: str) -> None:
    """Raise ``ItemError`` for the first text containing a control token. ``where`` is the
    request field holding the examples ("items")."""
    for i, example in enumerate(examples):
        for name, text in _texts(example):
            token = find_control_token(text, tokens)
            if token is not None:
                raise ItemError(
                    i, f"{where}[{i}].{name}", f"contains the model control token {token!r}"
                )


def check_messages(messages: Sequence[schemas.ChatMessage], tokens: Sequence[str]) -> None:
    for i, m in enumerate(messages):
        token = find_control_token(m.content, tokens)
        if token is not None:
            raise ItemError(
                i, f"messages[{i}].content", f"contains the model control token {token!r}"
            )


# ------------------------------------------------------------------------------------------
# model work


@dataclass(frozen=True)
class GradeKey:
    params: SamplingParams
    score_only: bool
    expected_score: bool


@dataclass(frozen=True)
class CompareKey:
    params: SamplingParams
    score_only: bool
    both_orders: bool


@dataclass(frozen=True)
class ChatKey:
    params: SamplingParams


def sampling_params(
    samples: int, temperature: float | None, top_p: float, max_new_tokens: int, seed: int
) -> SamplingParams:
    """As ``Judge.params``: temperature 0 for one sample and 1.0 for several by default."""
    return Judge.params(samples, temperature, top_p, max_new_tokens, seed)


class ModelWork:
    """The batcher's ``run_group``; called from one worker thread only."""

    def __init__(self, backend: Backend, *, max_retries: int, batch_size: int):
        self.backend = backend
        self.judge = Judge(backend, max_retries=max_retries, batch_size=batch_size)

    @property
    def reads_probabilities(self) -> bool:
        return isinstance(self.backend, VerdictScorer)

    def __call__(self, key: Hashable, items: list[Any]) -> list[Any]:
        if isinstance(key, GradeKey):
            return self.judge.grade_batch(
                items,
                **_judge_kwargs(key.params, key.score_only),
                expected_score=key.expected_score,
            )
        if isinstance(key, CompareKey):
            return self.judge.compare_batch(
                items, **_judge_kwargs(key.params, key.score_only), both_orders=key.both_orders
            )
        if isinstance(key, ChatKey):
            return self.backend.generate(items, key.params)
        raise TypeError(f"unknown work key {key!r}")


def _judge_kwargs(params: SamplingParams, score_only: bool) -> dict[str, Any]:
    return dict(
        samples=params.n,
        temperature=params.temperature,
        top_p=params.top_p,
        max_new_tokens=params.max_new_tokens,
        seed=params.seed,
        score_only=score_only,
    )


def chat_prompt(messages: Sequence[schemas.ChatMessage]) -> list[Message]:
    return [Message(m.role, m.content) for m in messages]


# ------------------------------------------------------------------------------------------
# results


def _sample(j: Judgment) -> schemas.Sample:
    return schemas.Sample(
        sample_index=j.sample_index,
        verdict=j.verdict,
        rationale=j.rationale,
        parse_error=j.parse_error,
        raw=j.raw,
        attempts=j.attempts,
        temperature=j.temperature,
        seed=j.seed,
    )


def _counts(judgments: list[Judgment]) -> schemas.Counts:
    return schemas.Counts(
        judgments=len(judgments),
        parse_failures=sum(not j.ok for j in judgments),
        retries=sum(j.attempts - 1 for j in judgments),
    )


def _shown(judgments: list[Judgment], verdict: int | None) -> Judgment:
    """The judgment whose rationale is reported: the first agreeing with the verdict."""
    return next((j for j in judgments if j.ok and j.verdict == verdict), judgments[0])


def _parse_error(judgments: list[Judgment], verdict: int | None) -> str | None:
    if verdict is not None:
        return None
    if len(judgments) == 1:
        return judgments[0].parse_error
    return f"no sample parsed (first: {judgments[0].parse_error})"


def grade_result(grade: Grade) -> schemas.GradeResult:
    js = grade.judgments
    shown = _shown(js, grade.verdict)
    return schemas.GradeResult(
        id=grade.example_id,
        verdict=grade.verdict,
        rationale=grade.rationale,
        raw=shown.raw,
        parse_error=_parse_error(js, grade.verdict),
        mean=grade.mean,
        samples=[_sample(j) for j in js],
        expected_score=grade.expected_score,
        score_probs=grade.score_probs,
        counts=_counts(js),
        template_id=js[0].template_id or "",
    )


def compare_result(cmp: Comparison) -> schemas.CompareResult:
    js, swapped = cmp.judgments, cmp.swapped_judgments
    parse_error = _parse_error(js, cmp.verdict)
    if swapped and cmp.verdict is None:
        parse_error = "no judgment parsed in either order"
    return schemas.CompareResult(
        id=cmp.example_id,
        verdict=cmp.verdict,
        rationale=cmp.rationale,
        raw=_shown(js, cmp.verdict).raw,
        parse_error=parse_error,
        samples=[_sample(j) for j in js],
        consistent=cmp.consistent,
        verdict_original_order=cmp.majority if swapped else None,
        verdict_swapped_order=cmp.swapped_majority if swapped else None,
        swapped_samples=[_sample(j) for j in swapped] if swapped else None,
        counts=_counts(js + swapped),
        template_id=js[0].template_id or "",
    )


def parse_failures(results: Sequence[Grade | Comparison]) -> int:
    return sum(r.parse_failures for r in results)


def reward_of(grade: Grade, method: str) -> tuple[float | None, float | None, str | None]:
    """(score 1-5, reward in [0, 1], reason when None). Never a default for a failed parse.

    ``expected_score``: sum of k * P(k) after "[RESULT] " of the parsed judgments;
    ``sampled_mean``: the mean of the parsed sampled verdicts.
    """
    score = grade.expected_score if method == "expected_score" else grade.mean
    if score is None:
        errors = [j.parse_error for j in grade.judgments if j.parse_error]
        reason = errors[0] if errors else "no verdict"
        return None, None, f"no judgment parsed: {reason}"
    return score, (score - 1) / 4, None
