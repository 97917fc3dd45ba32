"""Field helpers for source converters, each raising ``RecordError`` naming the source field.

    text_field({"prompt": "Hi"}, "prompt")            # 'Hi'; missing/None/blank -> RecordError
    score_field("4", "orig_score")                    # 4 (1-5; numeric strings accepted)
    parse_rubric_text("[Polite?]\nScore 1: a ...")    # Prometheus' one-string rubric -> Rubric

Also the keys every loader relies on: ``question_key`` (``meta["question_id"]``, else a hash
of the prompt) and ``prompt_text`` (the non-system turns before the judged response).
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from srjudge.records import (
    Example,
    RecordError,
    Rubric,
    check_score,
)

# ---------------------------------------------------------------------------------------
# field helpers: each raises RecordError naming the source field


def as_object(row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise RecordError("<row>", f"expected a JSON object, got {type(row).__name__}")
    return row


def required_field(row: dict[str, Any], key: str) -> Any:
    if key not in row or row[key] is None:
        raise RecordError(key, "missing")
    return row[key]


def text_field(row: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = required_field(row, key)
    if not isinstance(value, str):
        raise RecordError(key, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RecordError(key, "empty")
    return value


def optional_text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise RecordError(key, f"expected a string, got {type(value).__name__}")
    return value


def score_field(value: Any, name: str) -> float:
    """A 1-5 score; numeric strings such as "4" (Hub string columns) are accepted."""
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            raise RecordError(name, f"expected a number 1-5, got {value!r}") from None
    score = check_score(value, name)
    return int(score) if float(score).is_integer() else score


def scores_field(row: dict[str, Any], key: str) -> list[float]:
    value = required_field(row, key)
    if not isinstance(value, list) or not value:
        raise RecordError(key, "expected a non-empty list of scores")
    return [score_field(v, f"{key}[{i}]") for i, v in enumerate(value)]


def strings_field(row: dict[str, Any], key: str, n: int) -> list[str]:
    value = required_field(row, key)
    if not isinstance(value, list) or len(value) != n:
        raise RecordError(key, f"expected a list of {n} strings")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise RecordError(f"{key}[{i}]", "expected a non-empty string")
    return value


def nonempty_response(text: str, name: str) -> str:
    if not text.strip():
        raise RecordError(name, "empty")
    return text


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def coin(seed: int, key: str) -> bool:
    """A deterministic fair coin per (seed, key): independent of row order and of Python's hash."""
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()[0] & 1 == 1


def rubric_from_descriptions(row: dict[str, Any], criteria_key: str, desc_key: str) -> Rubric:
    """Rubric from ``criteria_key`` and five ``desc_key.format(i)`` fields (i = 1..5)."""
    criteria = text_field(row, criteria_key)
    descs = tuple(text_field(row, desc_key.format(i)) for i in range(1, 6))
    return Rubric(criteria, descs)  # type: ignore[arg-type]


_SCORE_LINE = re.compile(r"^\s*Score\s*([1-5])\s*[:.]\s*", re.M)


def parse_rubric_text(text: str, name: str = "rubric") -> Rubric:
    """Parse Prometheus' one-string rubric: ``[criteria]``, then ``Score 1: ..`` to ``Score 5: ..``.

    >>> text = "[Polite?]\\nScore 1: a\\nScore 2: b\\nScore 3: c\\nScore 4: d\\nScore 5: e"
    >>> r = parse_rubric_text(text)
    >>> r.criteria, r.score_descriptions[4]
    ('Polite?', 'e')
    """
    marks = list(_SCORE_LINE.finditer(text))
    numbers = [int(m.group(1)) for m in marks]
    if numbers != [1, 2, 3, 4, 5]:
        raise RecordError(
            name, f"expected 'Score 1:' .. 'Score 5:' lines in order, found {numbers}"
        )
    criteria = text[: marks[0].start()].strip()
    if criteria.startswith("[") and criteria.endswith("]"):
        criteria = criteria[1:-1].strip()
    if not criteria:
        raise RecordError(name, "no criteria before 'Score 1:'")
    ends = [m.start() for m in marks[1:]] + [len(text)]
    descs = tuple(text[m.end() : end].strip() for m, end in zip(marks, ends, strict=True))
    for i, d in enumerate(descs, 1):
        if not d:
            raise RecordError(name, f"empty description for score {i}")
    return Rubric(criteria, descs)  # type: ignore[arg-type]


def gpt4_gold(row: dict[str, Any]) -> tuple[float, str, dict[str, Any]]:
    """Mean GPT-4 score, and the feedback whose score is the mean rounded half up (else the first).

    A mean of 3.5 rounds to 4: halves are rounded up, not to the even neighbour.
    """
    scores = scores_field(row, "gpt4_score")
    feedbacks = strings_field(row, "gpt4_feedback", len(scores))
    mean = sum(scores) / len(scores)
    rounded = math.floor(mean + 0.5)
    index = next((i for i, s in enumerate(scores) if s == rounded), 0)
    meta = {"gpt4_scores": scores, "gpt4_feedbacks": feedbacks, "gold_rationale_index": index}
    return mean, feedbacks[index], meta


def question_key(example: Example) -> str:
    """``meta["question_id"]`` when a loader set it, else a hash of the non-system context."""
    qid = example.meta.get("question_id")
    if qid is not None:
        return str(qid)
    return short_hash(prompt_text(example))


def prompt_text(example: Example) -> str:
    """The user-visible conversation before the judged response(s): all non-system turns."""
    return "\n\n".join(m.content for m in example.context if m.role != "system")
