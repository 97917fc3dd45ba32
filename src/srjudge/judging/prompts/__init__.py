"""Prompt templates (paper appendix A.1) rendered into chat messages.

Every template is two Jinja2 files in this folder, ``<id>.system.j2`` and ``<id>.user.j2``;
``render_messages`` returns ``[Message("system", ...), Message("user", ...)]`` and backends pass
those through the model's own chat template. Both files see the same variables.

======================== ========== ===================================================
id                       paper      variables
======================== ========== ===================================================
``pointwise``            A.1.1      rubric, conversation, response, reference_answer
``pointwise_score_only`` ablation   same; output format just "[RESULT] (1-5)"
``pairwise``             A.1.2      rubric, conversation, response_1, response_2
``pairwise_score_only``  ablation   same; output format just "[RESULT] (1 or 2)"
``meta_judge_rating``    A.1.4      rubric, conversation, response (or response_1 +
                                    response_2), judgment
``meta_judge_rationale`` A.1.6      rubric, conversation, response (or response_1 +
                                    response_2), rationales
``preference_reversal``  A.1.5      conversation, response
======================== ========== ===================================================

Variables: ``rubric`` is a ``records.Rubric`` (or a mapping with ``criteria`` and ``items``,
the shape of ``Rubric.items()``); ``conversation`` a list of messages with ``role`` and
``content``; ``response*``, ``reference_answer`` and ``judgment`` strings; ``rationales`` a list
of strings, shown as ITEM1..ITEMk. ``reference_answer`` must be passed (``None`` hides the
reference section), because rendering uses ``StrictUndefined``: a missing variable raises
instead of rendering as empty text. The meta templates pick the pairwise layout when
``response_1`` is defined, the pointwise one otherwise.

Choices where the paper's text is garbled or safety-specific:

* A.1.1/A.1.2 are worded for safety; "safety criteria" / "safer" became "the scoring
  criteria" / "better", since the criteria vary per example. The criteria question is shown
  above the five score descriptions. The responses are shown as ``assistant: ...`` as in the
  paper's ``{{ response.role }}: {{ response.content }}``.
* The pointwise reference answer (Feedback-Collection style data) appears only when given, as
  "a reference answer that would get a score of 5".
* A.1.4 repeats its "Final Step" and "Key Points" blocks across a page break; each appears
  once. Instructions, definitions and the JUDGMENT RATING SYSTEM are the system message; the
  data and the final step the user message. The answer line is ``Judgment Rating: <judgment
  rating>`` as in the paper, asked for "on the last line" so that ``parsing.parse_meta_rating``
  can require it to end the output.
* A.1.6's duplicated "Please evaluate ..." paragraph appears once.
* A.1.5's closing line says "(write a rationale for criteria)" although the reversal prompt
  has no criteria; both of its format lines say "(write a rationale) [RESULT] (1-5)" here.

Text under judgment is data: before rendering, every string in every variable goes through
``judging.neutralize.neutralize``, which breaks chat control tokens (``<|im_end|>``),
``assistant:`` turn lines and the other delimiters the template relies on (``<END RESPONSE>``,
``[RESULT]``, ``Judgment Rating:``, ``ITEM2``, the ``###`` headings: those found in its files)
with a zero width space after their first character, so a response cannot close its block or
forge a turn or a verdict. A judgment shown to a meta-judge keeps its ``[RESULT]``: that
template has no such delimiter. The templates themselves are never changed.

Rendering keeps templates verbatim (``keep_trailing_newline``, no autoescape, explicit
``{%- ... %}`` whitespace control); only the file's final newline is removed from each message,
since the chat template supplies the turn separators. ``template_hash`` covers both files, so a
model's stored ``template_info`` says exactly which prompt it was trained or sampled with.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, Literal

import jinja2

from srjudge.judging.neutralize import delimiters_of, neutralize_value
from srjudge.records import Example, Message, PairwiseExample, PointwiseExample, Rubric

TEMPLATE_IDS: tuple[str, ...] = (
    "pointwise",
    "pairwise",
    "pointwise_score_only",
    "pairwise_score_only",
    "meta_judge_rating",
    "meta_judge_rationale",
    "preference_reversal",
)
_FOLDER = Path(__file__).parent
_PARTS: tuple[Literal["system", "user"], ...] = ("system", "user")


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_FOLDER),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _check_id(template_id: str) -> None:
    if template_id not in TEMPLATE_IDS:
        raise ValueError(f"unknown template id {template_id!r}; known: {', '.join(TEMPLATE_IDS)}")


def template_files(template_id: str) -> list[str]:
    """File names (in this folder) of a template, system part first."""
    _check_id(template_id)
    return [f"{template_id}.{part}.j2" for part in _PARTS]


@functools.cache
def _delimiters(template_id: str) -> tuple[str, ...]:
    """The delimiters neutralised in this template's variables (``neutralize.delimiters_of``)."""
    return delimiters_of("\n".join((_FOLDER / f).read_text() for f in template_files(template_id)))


def _rubric_vars(rubric: Any) -> Any:
    if isinstance(rubric, Rubric):
        return {"criteria": rubric.criteria, "items": rubric.items()}
    return rubric


def render_messages(template_id: str, **variables: Any) -> list[Message]:
    """Render a template into ``[system, user]`` messages; a missing variable raises.

    Every variable is data: its delimiters are neutralised first (``judging.neutralize``).

    Raises ``ValueError`` for an unknown id and ``jinja2.UndefinedError`` for a missing variable.
    """
    if "rubric" in variables:
        variables["rubric"] = _rubric_vars(variables["rubric"])
    names = _delimiters(template_id)
    variables = {name: neutralize_value(value, names) for name, value in variables.items()}
    env = _env()
    out = []
    for part, name in zip(_PARTS, template_files(template_id), strict=True):
        text = env.get_template(name).render(**variables)
        out.append(Message(part, text.removesuffix("\n")))
    return out


def judge_template_id(mode: Literal["pointwise", "pairwise"], *, score_only: bool = False) -> str:
    """``pointwise``/``pairwise``, with ``_score_only`` for the judge-without-rationale ablation."""
    if mode not in ("pointwise", "pairwise"):
        raise ValueError(f"mode must be 'pointwise' or 'pairwise', got {mode!r}")
    return f"{mode}_score_only" if score_only else mode


def judge_prompt(example: Example, *, score_only: bool = False) -> list[Message]:
    """The judge's chat for one example (A.1.1 pointwise, A.1.2 pairwise)."""
    template_id = judge_template_id(example.kind, score_only=score_only)
    if isinstance(example, PointwiseExample):
        return render_messages(
            template_id,
            rubric=example.rubric,
            conversation=example.context,
            response=example.response,
            reference_answer=example.reference_answer,
        )
    return render_messages(template_id, **_pairwise_vars(example))


def _pairwise_vars(example: PairwiseExample) -> dict[str, Any]:
    return {
        "rubric": example.rubric,
        "conversation": example.context,
        "response_1": example.response_1,
        "response_2": example.response_2,
    }


def _example_vars(example: Example) -> dict[str, Any]:
    if isinstance(example, PointwiseExample):
        return {
            "rubric": example.rubric,
            "conversation": example.context,
            "response": example.response,
        }
    return _pairwise_vars(example)


def meta_rating_prompt(example: Example, judgment_text: str) -> list[Message]:
    """A.1.4: ask a meta-judge to rate one judgment 1-5 (answer ``Judgment Rating: n``)."""
    return render_messages("meta_judge_rating", judgment=judgment_text, **_example_vars(example))


def rationale_meta_prompt(example: Example, rationales: list[str]) -> list[Message]:
    """A.1.6: ask a meta-judge for the best and worst of ``rationales`` (ITEM1 = first)."""
    if len(rationales) < 2:
        raise ValueError(
            f"need at least 2 rationales to pick best and worst, got {len(rationales)}"
        )
    return render_messages(
        "meta_judge_rationale", rationales=list(rationales), **_example_vars(example)
    )


def reversal_prompt(example: PointwiseExample) -> list[Message]:
    """A.1.5: the "7-year-old" prompt that yields low-quality rationales (pointwise only)."""
    if not isinstance(example, PointwiseExample):
        raise ValueError(f"reversal_prompt needs a pointwise example, got {example.kind}")
    return render_messages(
        "preference_reversal", conversation=example.context, response=example.response
    )


def template_hash(template_id: str) -> str:
    """sha256 over the template's files, each as ``name\\n`` + bytes + ``\\n``, system first.

    File names are hashed too, so moving text between system and user changes the hash.
    """
    h = hashlib.sha256()
    for name in template_files(template_id):
        h.update(name.encode() + b"\n" + (_FOLDER / name).read_bytes() + b"\n")
    return h.hexdigest()


def template_info(template_id: str) -> dict[str, Any]:
    """``{"id", "sha256", "files"}``: the provenance stored next to each model."""
    return {
        "id": template_id,
        "sha256": template_hash(template_id),
        "files": template_files(template_id),
    }


__all__ = [
    "TEMPLATE_IDS",
    "judge_prompt",
    "judge_template_id",
    "meta_rating_prompt",
    "rationale_meta_prompt",
    "render_messages",
    "reversal_prompt",
    "template_files",
    "template_hash",
    "template_info",
]
