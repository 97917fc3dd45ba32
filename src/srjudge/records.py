"""Typed records that every srjudge stage reads and writes, and their JSONL form.

Four record kinds travel between stages:

* ``PointwiseExample``: a conversation, one response, a rubric (criteria + five score
  descriptions), optionally a reference answer, a gold score and a gold rationale.
* ``PairwiseExample``: a conversation, two responses, a rubric, optionally a gold
  preference (1, 2 or "tie") and a gold rationale.
* ``Judgment``: one generated judgment (raw text, rationale, verdict, parse status,
  sampling metadata).
* ``PreferencePair``: a (chosen, rejected) pair of judgment texts for DPO, with the reason
  the curation strategy kept it.

One JSON object per line; ``kind`` tells examples apart. A pointwise line::

    {"kind": "pointwise", "id": "mt-1", "context": [{"role": "user", "content": "Hi"}],
     "response": "Hello!", "rubric": {"criteria": "Is it polite?",
     "score_descriptions": ["rude", "curt", "neutral", "polite", "very polite"]},
     "reference_answer": null, "gold_score": 4, "gold_rationale": null}

``*_from_dict`` validate a parsed JSON object and raise ``RecordError`` naming the field,
so that a file loader can report (file, line, field) and quarantine the row.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from srjudge.errors import UserError

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
Mode = Literal["pointwise", "pairwise"]
Preference = Literal[1, 2, "tie"]


class RecordError(UserError):
    """A record is malformed. ``field`` names the offending key (dotted for nesting).

    ``where`` (``"file:line"``), when known, leads the message:
    ``x.jsonl:3: field 'rubric': expected an object, got str``.
    """

    def __init__(self, field: str, message: str, where: str | None = None):
        text = f"field '{field}': {message}"
        super().__init__(f"{where}: {text}" if where else text)
        self.field = field
        self.message = message
        self.where = where

    def at(self, where: str) -> RecordError:
        """The same error located at ``where`` (``"file:line"``)."""
        return RecordError(self.field, self.message, where)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Rubric:
    """Scoring criteria: a question and the descriptions of scores 1..5, in order."""

    criteria: str
    score_descriptions: tuple[str, str, str, str, str]

    def items(self) -> list[dict[str, Any]]:
        """``[{"score": 1, "description": ...}, ...]``, the shape the prompt templates loop over."""
        return [{"score": i + 1, "description": d} for i, d in enumerate(self.score_descriptions)]


@dataclass
class PointwiseExample:
    id: str
    context: list[Message]
    response: str
    rubric: Rubric
    reference_answer: str | None = None
    # Gold Likert score. Integer for training data; evaluation sets may carry a mean of
    # several raters (e.g. 3.67 from three GPT-4 scores), hence float.
    gold_score: float | None = None
    gold_rationale: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    kind: Literal["pointwise"] = "pointwise"


@dataclass
class PairwiseExample:
    id: str
    context: list[Message]
    response_1: str
    response_2: str
    rubric: Rubric
    gold_preference: Preference | None = None
    gold_rationale: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    kind: Literal["pairwise"] = "pairwise"


Example = PointwiseExample | PairwiseExample


@dataclass
class Judgment:
    """One judgment sampled for one example.

    ``verdict`` is a score 1..5 (pointwise) or a preferred response 1/2 (pairwise), and is
    ``None`` exactly when parsing failed; ``parse_error`` then says why. A failed parse is
    never given a default verdict.
    """

    example_id: str
    mode: Mode
    raw: str
    rationale: str | None
    verdict: int | None
    parse_error: str | None = None
    sample_index: int = 0
    attempts: int = 1
    model: str | None = None
    template_id: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.parse_error is None and self.verdict is not None


@dataclass
class PreferencePair:
    """A DPO pair. ``prompt`` is the chat the judge saw (before the model's chat template)."""

    example_id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    chosen_verdict: int | None
    rejected_verdict: int | None
    strategy: str
    reason: str
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# validation helpers: each raises RecordError naming the field


def _require(d: dict[str, Any], key: str, prefix: str = "") -> Any:
    if key not in d:
        raise RecordError(prefix + key, "missing")
    return d[key]


def _str(value: Any, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RecordError(name, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RecordError(name, "empty")
    return value


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    return None if value is None else _str(value, key, allow_empty=True)


def _messages(value: Any, name: str) -> list[Message]:
    if isinstance(value, str):  # a bare instruction is one user turn
        return [Message("user", _str(value, name))]
    if not isinstance(value, list) or not value:
        raise RecordError(name, "expected a non-empty list of {role, content} messages")
    out = []
    for i, m in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(m, dict):
            raise RecordError(where, f"expected an object, got {type(m).__name__}")
        role = _require(m, "role", where + ".")
        if role not in ROLES:
            raise RecordError(where + ".role", f"must be one of {ROLES}, got {role!r}")
        out.append(Message(role, _str(_require(m, "content", where + "."), where + ".content")))
    return out


def rubric_from_dict(value: Any, name: str = "rubric") -> Rubric:
    if not isinstance(value, dict):
        raise RecordError(name, f"expected an object, got {type(value).__name__}")
    criteria = _str(_require(value, "criteria", name + "."), name + ".criteria")
    descs = _require(value, "score_descriptions", name + ".")
    if isinstance(descs, dict):  # {"1": ..., "5": ...} is accepted too
        descs = _descriptions_by_score(descs, name + ".score_descriptions")
    if not isinstance(descs, list):
        raise RecordError(name + ".score_descriptions", "expected a list of 5 strings")
    if len(descs) != 5:
        raise RecordError(
            name + ".score_descriptions", f"expected 5 descriptions, got {len(descs)}"
        )
    checked = tuple(_str(d, f"{name}.score_descriptions[{i}]") for i, d in enumerate(descs))
    return Rubric(criteria, checked)  # type: ignore[arg-type]


_SCORE_KEYS = ("1", "2", "3", "4", "5")


def _descriptions_by_score(descs: dict[Any, Any], name: str) -> list[Any]:
    """``{"1": d1, ..., "5": d5}`` -> ``[d1, ..., d5]``; any other set of keys is refused."""
    keys = [str(k) if isinstance(k, int) and not isinstance(k, bool) else k for k in descs]
    if sorted(k for k in keys if isinstance(k, str)) != list(_SCORE_KEYS) or len(keys) != 5:
        got = ", ".join(sorted(repr(k) for k in descs))
        raise RecordError(name, f"keys must be exactly 1..5, got {got}")
    by_key = dict(zip(keys, descs.values(), strict=True))
    return [by_key[k] for k in _SCORE_KEYS]


def check_id(value: Any, name: str = "id") -> str:
    """An example id: a non-blank string, or an integer (kept as its decimal string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise RecordError(name, f"expected a string or an integer, got {kind}")
    if not value.strip():
        raise RecordError(name, "blank")
    return value


def check_score(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(name, f"expected a number 1-5, got {type(value).__name__}")
    if math.isnan(value) or not 1 <= value <= 5:
        raise RecordError(name, f"score {value} is outside 1-5")
    return value


def check_preference(value: Any, name: str) -> Preference:
    if value in (1, 2, "tie") and not isinstance(value, bool):
        return value
    if value in ("1", "2"):
        return int(value)  # type: ignore[return-value]
    raise RecordError(name, f'expected 1, 2 or "tie", got {value!r}')


def _meta(d: dict[str, Any]) -> dict[str, Any]:
    meta = d.get("meta") or {}
    if not isinstance(meta, dict):
        raise RecordError("meta", "expected an object")
    return meta


def pointwise_from_dict(d: dict[str, Any]) -> PointwiseExample:
    gold = d.get("gold_score")
    return PointwiseExample(
        id=check_id(_require(d, "id")),
        context=_messages(_require(d, "context"), "context"),
        response=_str(_require(d, "response"), "response"),
        rubric=rubric_from_dict(_require(d, "rubric")),
        reference_answer=_opt_str(d, "reference_answer"),
        gold_score=None if gold is None else check_score(gold, "gold_score"),
        gold_rationale=_opt_str(d, "gold_rationale"),
        source=_opt_str(d, "source"),
        meta=_meta(d),
    )


def pairwise_from_dict(d: dict[str, Any]) -> PairwiseExample:
    gold = d.get("gold_preference")
    return PairwiseExample(
        id=check_id(_require(d, "id")),
        context=_messages(_require(d, "context"), "context"),
        response_1=_str(_require(d, "response_1"), "response_1"),
        response_2=_str(_require(d, "response_2"), "response_2"),
        rubric=rubric_from_dict(_require(d, "rubric")),
        gold_preference=None if gold is None else check_preference(gold, "gold_preference"),
        gold_rationale=_opt_str(d, "gold_rationale"),
        source=_opt_str(d, "source"),
        meta=_meta(d),
    )


def example_from_dict(d: Any) -> Example:
    """Validate one JSON object as an example; ``kind`` defaults from the fields present."""
    if not isinstance(d, dict):
        raise RecordError("<row>", f"expected a JSON object, got {type(d).__name__}")
    kind = d.get("kind") or ("pairwise" if "response_1" in d else "pointwise")
    if kind == "pointwise":
        return pointwise_from_dict(d)
    if kind == "pairwise":
        return pairwise_from_dict(d)
    raise RecordError("kind", f"expected 'pointwise' or 'pairwise', got {kind!r}")


_KNOWN_FIELDS: dict[str, tuple[str, ...]] = {
    "pointwise": tuple(f.name for f in fields(PointwiseExample)),
    "pairwise": tuple(f.name for f in fields(PairwiseExample)),
}


def unknown_fields(d: Any) -> list[RecordError]:
    """One warning per key of an example object that srjudge does not read (so it is not
    kept), naming the nearest known field when the key looks misspelt (``gold_scor``).

    >>> [str(w) for w in unknown_fields({"id": "a", "gold_scor": 4, "notes": "x"})]
    ["field 'gold_scor': unknown field, not kept (did you mean 'gold_score'?)", \
"field 'notes': unknown field, not kept"]
    """
    if not isinstance(d, dict):
        return []
    kind = d.get("kind") or ("pairwise" if "response_1" in d else "pointwise")
    if kind not in _KNOWN_FIELDS:
        return []
    out = _unknown(d, _KNOWN_FIELDS[kind], "")
    if isinstance(d.get("rubric"), dict):
        out += _unknown(d["rubric"], ("criteria", "score_descriptions"), "rubric.")
    if isinstance(d.get("context"), list):
        for i, m in enumerate(d["context"]):
            if isinstance(m, dict):
                out += _unknown(m, ("role", "content"), f"context[{i}].")
    return out


def _unknown(d: dict[Any, Any], known: tuple[str, ...], prefix: str) -> list[RecordError]:
    out = []
    for key in d:
        if key in known:
            continue
        near = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
        out.append(RecordError(f"{prefix}{key}", f"unknown field, not kept{hint}"))
    return out


def example_hash(example: Example) -> str:
    """sha256 of an example's canonical JSON: equal exactly when every field is equal."""
    text = json.dumps(to_dict(example), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rebuild_messages(value: list[dict[str, Any]]) -> list[Message]:
    return [Message(m["role"], m["content"]) for m in value]


def judgment_from_dict(d: dict[str, Any]) -> Judgment:
    return Judgment(**d)


def pair_from_dict(d: dict[str, Any]) -> PreferencePair:
    return PreferencePair(**{**d, "prompt": _rebuild_messages(d["prompt"])})


def load_pairs(path: str | Path) -> list[PreferencePair]:
    """Preference pairs of a JSONL file (``srjudge curate``), strictly: a bad line is a
    ``RecordError`` naming the file and line."""
    out = []
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(pair_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
                message = f"not a preference pair ({type(e).__name__}: {e})"
                raise RecordError("<row>", message, f"{path}:{lineno}") from None
    return out


def to_dict(record: Any) -> dict[str, Any]:
    """Plain JSON-ready dict of any record (tuples become lists)."""
    return asdict(record)


# ---------------------------------------------------------------------------------------
# JSONL I/O


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield parsed objects of a JSONL file; blank lines are skipped. Strict: raises on bad JSON."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) to ``path``; returns the count."""
    n = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r if isinstance(r, dict) else to_dict(r), ensure_ascii=False) + "\n")
            n += 1
    return n


def load_examples(path: str | Path) -> list[Example]:
    """Load a file in srjudge's own JSONL format, strictly (first bad row raises with its line).

    For lenient loading that reports and quarantines bad rows use ``srjudge.data.validate_file``.
    """
    out: list[Example] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(example_from_dict(json.loads(line)))
            except RecordError as e:
                raise e.at(f"{path}:{lineno}") from None
            except json.JSONDecodeError as e:
                raise RecordError(
                    "<json>", f"malformed JSON: {e.msg}", f"{path}:{lineno}"
                ) from None
    return out
