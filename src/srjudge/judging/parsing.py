"""Pure parsers for generated text: judgments, meta-judge ratings, best/worst picks.

A judgment is ``(rationale) [RESULT] n`` (paper A.1). The parsers see only the generated
text, never the prompt, so a response under evaluation that itself contains "[RESULT] 5"
cannot decide its own score. A failure is a ``ParseFailure(reason)``, never a default verdict.

Rules of ``parse_judgment`` (pinned by ``tests/test_parsing.py``):

1. Text from the first end-of-turn token (``<|im_end|>``, ``<|eot_id|>``, ``</s>``, ...)
   on is dropped: it is not part of the turn. Nothing left -> "empty output".
2. Exactly one ``[RESULT]`` marker (case-insensitive, spaces inside the brackets and markdown
   bold around it allowed). None -> "no [RESULT] marker": a "Score: 4" inside the rationale
   is not a verdict. Two or more -> "two verdicts", even when they agree.
3. The verdict follows the marker, optionally after ``:``/``=``, bold ``**``, a label word
   (``Score``, ``Rating``, ``Response``), and an opening ``(`` ``[`` or ``<``. It is written as
   an integer: "2.5" and "3.0" fail ("non-integer verdict"). Pointwise may add a denominator of
   5 ("3/5", "3 out of 5"); any other denominator fails. Range: 1..5 pointwise, 1..2 pairwise.
4. After the verdict only whitespace and trivial punctuation (``. ! * ` " ' ) ] >``) may
   follow; anything else -> "text after verdict" (so "[RESULT] 4 (Good)", "[RESULT] 1-5" and
   a paragraph after the verdict all fail).
5. The rationale is the text before the marker, stripped, with a leading "Feedback:" /
   "Rationale:" label (bold or not) removed. An empty rationale fails ("empty rationale")
   unless the caller passes ``require_rationale=False`` (the score-only ablation).

``parse_meta_rating`` applies the same rules to a ``Judgment Rating: n`` line (A.1.4): one
such label (case-insensitive, "Judgement" spelling and bold allowed), integer 1..5, and after
it only an optional parenthesised label such as "(Good Judgment)" and trivial punctuation.
The reasoning before it becomes ``Parsed.rationale`` (may be empty).

``parse_best_worst`` reads a ``["ITEMx", "ITEMy"]`` list (A.1.6; quotes optional, any
surrounding text or backticks allowed). Several lists are accepted only if they are
identical; items must be distinct and within 1..n_items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Parsed:
    rationale: str
    verdict: int


@dataclass(frozen=True)
class ParseFailure:
    reason: str


@dataclass(frozen=True)
class BestWorst:
    """1-based item numbers of the most and least effective rationale."""

    best: int
    worst: int


_END_OF_TURN = re.compile(
    r"<\|im_end\|>|<\|im_start\|>|<\|eot_id\|>|<\|end_of_text\|>|<\|endoftext\|>"
    r"|<\|end\|>|<end_of_turn>|</s>"
)
_MARKER = re.compile(r"(?:\*\*)?\[\s*RESULT\s*\](?:\*\*)?", re.IGNORECASE)
_RATING_LABEL = re.compile(
    r"(?:\*\*)?\s*judge?ment\s+rating\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.IGNORECASE
)
# What may sit between a marker/label and the verdict, the verdict, and an optional "/5".
_VERDICT = re.compile(
    r"""\s*[:=]?\s*(?:\*\*)?\s*[:=]?\s*
    (?:(?:score|rating|response)\s*:?\s*)?
    [(\[<]?\s*
    (?P<num>[+-]?\d+(?:\.\d+)?)
    \s*[)\]>]?
    (?:\s*(?:/|out\s+of)\s*(?P<den>\d+))?""",
    re.IGNORECASE | re.VERBOSE,
)
_TRIVIAL_TAIL = re.compile(r"[\s.!*`\"')\]>]*")
_RATING_TAIL = re.compile(r"[\s*]*(?:\([A-Za-z ]+\))?[\s.!*`\"')\]>]*")
_RATIONALE_LABEL = re.compile(
    r"^(?:\*\*)?\s*(?:feedback|rationale)\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE
)
_ITEM_LIST = re.compile(
    r"\[\s*[\"']?\s*ITEM\s*(\d+)\s*[\"']?\s*,\s*[\"']?\s*ITEM\s*(\d+)\s*[\"']?\s*\]",
    re.IGNORECASE,
)


def cut_at_end_of_turn(text: str) -> str:
    """Drop everything from the first end-of-turn token on.

    >>> cut_at_end_of_turn("Good. [RESULT] 4<|im_end|>\\n<|im_start|>user")
    'Good. [RESULT] 4'
    >>> cut_at_end_of_turn("no token")
    'no token'
    """
    m = _END_OF_TURN.search(text)
    return text if m is None else text[: m.start()]


def strip_rationale_label(text: str) -> str:
    """Strip surrounding whitespace and a leading "Feedback:"/"Rationale:" label.

    >>> strip_rationale_label("  **Feedback:** The answer is correct. ")
    'The answer is correct.'
    >>> strip_rationale_label("Feedbacks are welcome")
    'Feedbacks are welcome'
    """
    return _RATIONALE_LABEL.sub("", text.strip(), count=1).strip()


def _read_verdict(
    text: str, start: int, lo: int, hi: int, *, allow_denominator: bool, what: str, after: str
) -> tuple[int, int] | ParseFailure:
    """Read the integer after position ``start``; returns (value, end) or a failure."""
    m = _VERDICT.match(text, start)
    if m is None:
        found = text[start:].strip()[:20]
        return ParseFailure(f"no {what} after {after}" + (f" (found {found!r})" if found else ""))
    num = m["num"]
    if "." in num:
        return ParseFailure(f"non-integer {what} {num!r}")
    value = int(num)
    if m["den"] is not None and (not allow_denominator or m["den"] != str(hi)):
        return ParseFailure(f"{what} {num}/{m['den']} is not on the {lo}-{hi} scale")
    if not lo <= value <= hi:
        return ParseFailure(f"{what} {value} outside {lo}-{hi}")
    return value, m.end()


def parse_judgment(
    text: str, mode: Literal["pointwise", "pairwise"], *, require_rationale: bool = True
) -> Parsed | ParseFailure:
    """Parse ``(rationale) [RESULT] n``; see the module docstring for the rules."""
    if mode not in ("pointwise", "pairwise"):
        raise ValueError(f"mode must be 'pointwise' or 'pairwise', got {mode!r}")
    text = cut_at_end_of_turn(text)
    if not text.strip():
        return ParseFailure("empty output")
    markers = list(_MARKER.finditer(text))
    if not markers:
        return ParseFailure("no [RESULT] marker")
    if len(markers) > 1:
        return ParseFailure(f"two verdicts ({len(markers)} [RESULT] markers)")
    marker = markers[0]
    hi = 5 if mode == "pointwise" else 2
    read = _read_verdict(
        text,
        marker.end(),
        1,
        hi,
        allow_denominator=mode == "pointwise",
        what="verdict",
        after="[RESULT]",
    )
    if isinstance(read, ParseFailure):
        return read
    verdict, end = read
    if not _TRIVIAL_TAIL.fullmatch(text, end):
        return ParseFailure(f"text after verdict: {text[end:].strip()[:40]!r}")
    rationale = strip_rationale_label(text[: marker.start()])
    if require_rationale and not rationale:
        return ParseFailure("empty rationale")
    return Parsed(rationale, verdict)


def parse_meta_rating(text: str) -> Parsed | ParseFailure:
    """Parse a meta-judge answer ending in ``Judgment Rating: n`` (A.1.4); verdict = rating."""
    text = cut_at_end_of_turn(text)
    if not text.strip():
        return ParseFailure("empty output")
    labels = list(_RATING_LABEL.finditer(text))
    if not labels:
        return ParseFailure("no 'Judgment Rating:' line")
    if len(labels) > 1:
        return ParseFailure(f"two ratings ({len(labels)} 'Judgment Rating:' labels)")
    label = labels[0]
    read = _read_verdict(
        text, label.end(), 1, 5, allow_denominator=True, what="rating", after="'Judgment Rating:'"
    )
    if isinstance(read, ParseFailure):
        return read
    rating, end = read
    if not _RATING_TAIL.fullmatch(text, end):
        return ParseFailure(f"text after rating: {text[end:].strip()[:40]!r}")
    return Parsed(text[: label.start()].strip().rstrip("#").strip(), rating)


def parse_best_worst(text: str, n_items: int) -> BestWorst | ParseFailure:
    """Parse ``["ITEMx", "ITEMy"]`` (best first, worst second) for ``n_items`` rationales.

    >>> parse_best_worst('`["ITEM3", "ITEM1"]`', 3)
    BestWorst(best=3, worst=1)
    >>> parse_best_worst('["ITEM2", "ITEM2"]', 3)
    ParseFailure(reason='best and worst are the same item (ITEM2)')
    """
    if n_items < 2:
        raise ValueError(f"best/worst needs at least 2 items, got n_items={n_items}")
    text = cut_at_end_of_turn(text)
    if not text.strip():
        return ParseFailure("empty output")
    picks = {(int(m[1]), int(m[2])) for m in _ITEM_LIST.finditer(text)}
    if not picks:
        return ParseFailure('no ["ITEMx", "ITEMy"] list')
    if len(picks) > 1:
        return ParseFailure(f"two different answers: {sorted(picks)}")
    best, worst = picks.pop()
    for item in (best, worst):
        if not 1 <= item <= n_items:
            return ParseFailure(f"ITEM{item} outside 1-{n_items}")
    if best == worst:
        return ParseFailure(f"best and worst are the same item (ITEM{best})")
    return BestWorst(best, worst)
