"""Meta-judge stages: the model calls behind the meta-judge curation strategies.

Each function prompts a backend (the current judge J_t rating itself, or any other
``Backend``), parses the answers with ``srjudge.judging.parsing``, re-asks only the prompts
whose answer did not parse (at most ``max_retries`` more rounds, one batched ``generate`` call
per round, a new seed each round so a seeded sampler does not repeat the same failure), and
returns plain values that ``srjudge.training.curate`` turns into pairs:

    ratings = rate_judgments(backend, example, judgments, params)      # A.1.4: [4, None, 2]
    pairs = curate(example, judgments, CurationConfig("meta_judge"), ratings=ratings).pairs

    best_worst = pick_best_worst(backend, example, judgments, params)  # A.1.6: BestWorst(3, 1)
    low = write_low_quality(backend, example, 2, params)               # A.1.5: ["It is ok.", ...]

``*_many`` do the same for several inputs at once. ``meta_judge_inputs`` is the meta-judge
step of a curation run, the one path that both the loop's curate stage and ``srjudge curate``
take: batched, and resumable through a JSONL file next to the pairs (a rerun with another
meta-judge model or parameters, or with changed inputs or judgments, is refused: the file's
settings and a hash of each input's example and judgments are checked).

An answer that never parses stays ``None`` (or is dropped): it is never given a default
rating, and ``curate`` counts it (``CurationStats.meta_failures``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from srjudge.judging.backends import Backend, SamplingParams
from srjudge.judging.parsing import (
    BestWorst,
    Parsed,
    parse_best_worst,
    parse_judgment,
    parse_meta_rating,
)
from srjudge.judging.prompts import meta_rating_prompt, rationale_meta_prompt, reversal_prompt
from srjudge.judging.sampling import batched
from srjudge.records import (
    Example,
    Judgment,
    Message,
    PointwiseExample,
    example_hash,
    read_jsonl,
    to_dict,
)
from srjudge.resume import ResumableJSONL
from srjudge.training.curate import STRATEGIES, usable

log = logging.getLogger(__name__)
T = TypeVar("T")
Item = tuple[Example, Sequence[Judgment]]
"""An input and its sampled judgments."""


def _ask(
    backend: Backend,
    prompts: Sequence[Sequence[Message]],
    params: SamplingParams,
    parses: Sequence[Callable[[str], T | None]],
    max_retries: int,
) -> list[T | None]:
    """One parsed answer per prompt (None if no round parsed); unparsed prompts are re-asked.

    ``parses[i]`` reads the answer to ``prompts[i]``; every round is one ``generate`` call.
    """
    results: list[T | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(max_retries + 1):
        if not todo:
            break
        # One answer per prompt is all we read, so n=1 whatever the caller's params say.
        round_params = replace(params, n=1, seed=params.seed + attempt)
        outputs = backend.generate([prompts[i] for i in todo], round_params)
        for i, texts in zip(todo, outputs, strict=True):
            results[i] = parses[i](texts[0])
        todo = [i for i in todo if results[i] is None]
    if todo:
        log.info("meta-judge: %d of %d answers unparseable after retries", len(todo), len(prompts))
    return results


def _rating(text: str) -> int | None:
    parsed = parse_meta_rating(text)
    return parsed.verdict if isinstance(parsed, Parsed) else None


def rate_many(
    backend: Backend, items: Sequence[Item], params: SamplingParams, *, max_retries: int = 2
) -> list[list[int | None]]:
    """``rate_judgments`` for several inputs, their prompts sharing each ``generate`` call."""
    ratings: list[list[int | None]] = [[None] * len(js) for _, js in items]
    slots = [(k, i) for k, (_, js) in enumerate(items) for i, j in enumerate(js) if j.ok]
    prompts = [meta_rating_prompt(items[k][0], items[k][1][i].raw.strip()) for k, i in slots]
    answers = _ask(backend, prompts, params, [_rating] * len(prompts), max_retries)
    for (k, i), rating in zip(slots, answers, strict=True):
        ratings[k][i] = rating
    return ratings


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
    return rate_many(backend, [(example, judgments)], params, max_retries=max_retries)[0]


def _best_worst_parser(n_items: int) -> Callable[[str], BestWorst | None]:
    def parse(text: str) -> BestWorst | None:
        picked = parse_best_worst(text, n_items)
        return picked if isinstance(picked, BestWorst) else None

    return parse


def pick_best_worst_many(
    backend: Backend, items: Sequence[Item], params: SamplingParams, *, max_retries: int = 2
) -> list[BestWorst | None]:
    """``pick_best_worst`` for several inputs, their prompts sharing each ``generate`` call."""
    usable_lists = [usable(js) for _, js in items]
    asked = [k for k, ok in enumerate(usable_lists) if len(ok) >= 2]
    prompts = [
        rationale_meta_prompt(items[k][0], [j.rationale or "" for j in usable_lists[k]])
        for k in asked
    ]
    parses = [_best_worst_parser(len(usable_lists[k])) for k in asked]
    out: list[BestWorst | None] = [None] * len(items)
    for k, picked in zip(asked, _ask(backend, prompts, params, parses, max_retries), strict=True):
        out[k] = picked
    return out


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
    return pick_best_worst_many(backend, [(example, judgments)], params, max_retries=max_retries)[0]


def _low_quality_rationale(text: str) -> str | None:
    # A.1.5 asks for "(rationale) [RESULT] (1-5)" for any example, hence pointwise parsing;
    # the child's score is dropped because curation puts the gold verdict in its place.
    parsed = parse_judgment(text, "pointwise")
    return parsed.rationale if isinstance(parsed, Parsed) else None


def low_quality_many(
    backend: Backend,
    examples: Sequence[Example],
    n: int,
    params: SamplingParams,
    *,
    max_retries: int = 2,
) -> list[list[str]]:
    """``write_low_quality`` for several inputs: each round asks every input still short of
    ``n`` rationales, one ``generate`` call per distinct shortfall."""
    prompts = {k: reversal_prompt(ex) for k, ex in enumerate(examples) if _is_pointwise(ex)}
    kept: list[list[str]] = [[] for _ in examples]
    for attempt in range(max_retries + 1):
        by_missing: dict[int, list[int]] = {}
        for k in prompts:
            if n - len(kept[k]) > 0:
                by_missing.setdefault(n - len(kept[k]), []).append(k)
        if not by_missing:
            break
        for missing, ks in sorted(by_missing.items()):
            round_params = replace(params, n=missing, seed=params.seed + attempt)
            outputs = backend.generate([prompts[k] for k in ks], round_params)
            for k, texts in zip(ks, outputs, strict=True):
                kept[k] += [r for r in map(_low_quality_rationale, texts) if r]
    return [rationales[:n] for rationales in kept]


def _is_pointwise(example: Example) -> bool:
    return isinstance(example, PointwiseExample)


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
    return low_quality_many(backend, [example], n, params, max_retries=max_retries)[0]


# ---------------------------------------------------------------------------------------
# the meta-judge step of a curation run: one resumable, batched path (loop and CLI)

# a curate input name (``curate.STRATEGIES[...].needs``) -> its batched meta-judge call
_CALLS: dict[str, Callable[[Backend, Sequence[Item], SamplingParams], list[Any]]] = {
    "ratings": rate_many,
    "best_worst": pick_best_worst_many,
    "low_quality": lambda backend, items, params: low_quality_many(
        backend, [ex for ex, _ in items], 1, params
    ),
}


def meta_params(max_new_tokens: int, seed: int) -> SamplingParams:
    """What every meta-judge call of a curation run uses: greedy, one answer per prompt."""
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)


def needs_meta_judge(strategy: str) -> bool:
    """Whether ``strategy`` needs meta-judge calls before the (pure) curation."""
    return bool(STRATEGIES[strategy].needs)


def meta_judge_inputs(
    strategy: str,
    make_backend: Callable[[], Backend],
    examples: Mapping[str, Example],
    judged: Mapping[str, Sequence[Judgment]],
    params: SamplingParams,
    path: Path,
    *,
    batch_size: int | None = None,
    model: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The keyword inputs ``curate`` needs for ``strategy``, per example id (``{}`` when it
    needs none): ``{"ratings": [...]}``, ``{"best_worst": BestWorst | None}`` or
    ``{"low_quality": [...]}`` (one low-quality rationale per input).

    Each input's result is appended to ``path`` (``{"example_id": ..., <input>: ...}``) as it
    is produced, so a killed run continues where it stopped; ids in ``judged`` but not in
    ``examples`` are skipped. The backend (a model load) is made only when work is left;
    ``batch_size`` inputs (default: the backend's ``inputs_per_call``) share each
    ``generate`` round. ``model`` names the meta-judge for the settings a rerun must match.
    """
    needs = STRATEGIES[strategy].needs
    if not needs:
        return {}
    (need,) = needs
    settings = {"need": need, "model": model, "params": to_dict(params)}
    with ResumableJSONL(
        path, key="example_id", settings=settings, fingerprint="input_sha256"
    ) as sink:
        hashes = {i: _item_hash(examples[i], judged[i]) for i in judged if i in examples}
        sink.refuse_changed(hashes)
        todo = [i for i in judged if i in examples and i not in sink.done]
        if todo:
            backend = make_backend()
            for chunk in batched(todo, batch_size or backend.inputs_per_call):
                items = [(examples[i], judged[i]) for i in chunk]
                for ex_id, value in zip(chunk, _CALLS[need](backend, items, params), strict=True):
                    row = {"example_id": ex_id, need: _jsonable(value)}
                    sink.append(row | {"input_sha256": hashes[ex_id]})
    return read_meta_judge_inputs(path)


def _item_hash(example: Example, judgments: Sequence[Judgment]) -> str:
    """What a meta-judge answer was made from: the example and the judgments' texts."""
    text = example_hash(example) + "".join(f"\n{j.raw}" for j in judgments)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> Any:
    return to_dict(value) if isinstance(value, BestWorst) else value


def read_meta_judge_inputs(path: Path) -> dict[str, dict[str, Any]]:
    """What ``meta_judge_inputs`` wrote, per example id, as ``curate`` takes it."""
    out: dict[str, dict[str, Any]] = {}
    for row in read_jsonl(path):
        ex_id = row.pop("example_id")
        row.pop("input_sha256", None)
        if row.get("best_worst") is not None:
            row["best_worst"] = BestWorst(**row["best_worst"])
        out[ex_id] = row
    return out
