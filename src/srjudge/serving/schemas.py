"""Request and response bodies of ``srjudge serve``, as pydantic models (they make /openapi.json).

Items of ``/v1/grade`` and ``/v1/compare`` are srjudge example records exactly as in a JSONL file
(docs/FORMAT.md): they are typed here as JSON objects and validated by ``srjudge.records``, so
an error names the item's index and the record field (``items[3].rubric.score_descriptions``).
Result fields follow the lines ``srjudge judge`` writes (``srjudge.judging.files`` docstring).
Unknown request keys are refused (422), except on ``/v1/chat/completions``, where OpenAI
clients send extras: those that would change the output are refused, the rest ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SEED_LIMIT = 2**31


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Sampling(_Strict):
    samples: int = Field(1, ge=1, description="judgments per item (N); capped by --max-samples")
    temperature: float | None = Field(
        None, ge=0, le=2, description="default: 0 (greedy) for 1 sample, 1.0 for several"
    )
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int | None = Field(
        None, ge=1, description="default and cap set by the server (--max-new-tokens)"
    )
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    score_only: bool = Field(False, description="the no-rationale templates (an ablation)")


class GradeRequest(_Sampling):
    items: list[dict[str, Any]] = Field(
        min_length=1, description="pointwise examples (srjudge records); --max-items per request"
    )
    expected_score: bool = Field(
        False, description="also P(1..5) after '[RESULT] ' (backends that read probabilities)"
    )


class CompareRequest(_Sampling):
    items: list[dict[str, Any]] = Field(min_length=1, description="pairwise examples")
    both_orders: bool = Field(False, description="also judge with the two responses swapped")


class RewardRequest(_Strict):
    prompts: list[str | list[dict[str, Any]]] = Field(
        min_length=1, description="a user instruction, or a conversation [{role, content}]"
    )
    responses: list[str] = Field(min_length=1, description="one response per prompt")
    rubric: dict[str, Any] | list[dict[str, Any]] = Field(
        description="{criteria, score_descriptions[5]}, for all prompts or one per prompt"
    )
    reference_answers: list[str | None] | None = None
    samples: int = Field(1, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    max_new_tokens: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)


# ------------------------------------------------------------------------------------------
# results


class Sample(BaseModel):
    sample_index: int
    verdict: int | None
    rationale: str | None
    parse_error: str | None
    raw: str
    attempts: int
    temperature: float | None
    seed: int | None


class Counts(BaseModel):
    judgments: int
    parse_failures: int
    """Judgments that still did not parse after their retries."""
    retries: int


class GradeResult(BaseModel):
    id: str
    verdict: int | None = Field(description="majority over the samples; null if none parsed")
    rationale: str | None = Field(description="of the first sample agreeing with the verdict")
    raw: str = Field(description="full text of that sample (of the first if none parsed)")
    parse_error: str | None
    mean: float | None = Field(description="mean of the parsed verdicts")
    samples: list[Sample]
    expected_score: float | None = None
    score_probs: list[float] | None = None
    counts: Counts
    template_id: str


class CompareResult(BaseModel):
    id: str
    verdict: int | None = Field(description="1 or 2 (response_1 or response_2), both orders")
    rationale: str | None
    raw: str
    parse_error: str | None
    samples: list[Sample]
    consistent: bool | None = Field(None, description="both orders agree (both_orders only)")
    verdict_original_order: int | None = None
    verdict_swapped_order: int | None = Field(None, description="mapped back to the item's order")
    swapped_samples: list[Sample] | None = None
    counts: Counts
    template_id: str


class GradeResponse(BaseModel):
    model: str
    results: list[GradeResult]


class CompareResponse(BaseModel):
    model: str
    results: list[CompareResult]


class RewardResponse(BaseModel):
    model: str
    method: Literal["expected_score", "sampled_mean"]
    rewards: list[float | None] = Field(description="(score - 1) / 4 in [0, 1]; null: no verdict")
    reasons: list[str | None] = Field(description="why a reward is null")
    scores: list[float | None] = Field(description="the 1-5 score each reward rescales")


# ------------------------------------------------------------------------------------------
# OpenAI-compatible


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(1, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=0, lt=SEED_LIMIT)
    stream: bool = False


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: Literal["stop"] = "stop"


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "srjudge"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    backend: str
    queued_items: int
    uptime_s: float


class ErrorDetail(BaseModel):
    message: str
    type: str
    field: str | None = None
    index: int | None = None
    limit: int | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
