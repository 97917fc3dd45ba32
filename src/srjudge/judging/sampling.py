"""N judgments per input with bounded retries, and the sampling stage's resumable file.

    for example, judgments in sample_judgments(backend, examples, SamplingParams(n=10)):
        ...
    counts = sample_to_file(make_backend, inputs, params, Path("judgments.jsonl"))

Every completion is parsed (``parsing.parse_judgment``); an unparseable one is re-sampled
from the same prompt with a new, deterministically derived seed, at most ``max_retries``
extra times. One that still fails is kept as a ``Judgment`` with ``verdict=None``, its
``parse_error`` and raw text: it is counted as a failure, never given a default score.
Retries of greedy decoding (temperature 0) would only repeat the same text, so they sample at
``GREEDY_RETRY_TEMPERATURE``; each judgment records the temperature and seed that produced it.

``sample_to_file`` appends one line per input (``{"example_id", "kind", "judgments",
"input_sha256"}``) through ``ResumableJSONL``, so a killed sampling stage continues where it
stopped, split over worker processes if asked (``srjudge.judging.shards``: the same
judgments for any number); a rerun with other settings (model, sampling parameters, retries,
templates: kept in ``<stem>.settings.json``), other inputs or changed input rows is refused
before anything is written. ``load_judgments`` reads it back and ``select_inputs`` draws the
inputs of an iteration.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from srjudge.errors import UserError
from srjudge.judging.backends import Backend, PromptTooLongError, SamplingParams
from srjudge.judging.parsing import ParseFailure, parse_judgment
from srjudge.judging.prompts import judge_prompt, judge_template_id, template_hash
from srjudge.judging.shards import ShardJob, check_files, run_sharded
from srjudge.records import (
    Example,
    Judgment,
    Message,
    example_hash,
    judgment_from_dict,
    to_dict,
    write_jsonl,
)

GREEDY_RETRY_TEMPERATURE = 1.0
"""Temperature of the retries of a greedy (temperature 0) judgment that did not parse."""
DEFAULT_BATCH_SIZE = 8


# ---------------------------------------------------------------------------------------
# sampling


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from ``seed`` and ``parts``, the same on every run.

    >>> derive_seed(0, "retry", 1) == derive_seed(0, "retry", 1) != derive_seed(0, "retry", 2)
    True
    """
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def batched(items: Iterable[Example], size: int) -> Iterator[list[Example]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def progress_bar(total: int | None, enabled: bool, desc: str) -> tqdm:
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
    try:
        outputs = _generate(backend, prompts, params)
    except PromptTooLongError as e:  # name the example, not its place in the batch
        raise PromptTooLongError(e.index, f"example {batch[e.index].id!r}: {e}") from None
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
    with progress_bar(total, progress, "judging") as bar:
        for batch in batched(examples, batch_size):
            results = _judge_batch(
                backend, batch, params, score_only=score_only, max_retries=max_retries
            )
            bar.update(len(batch))
            yield from zip(batch, results, strict=True)


def select_inputs(
    examples: list[Example], seed: int, *, fraction: float | None = None, count: int | None = None
) -> list[Example]:
    """The p_t% (``fraction``) or ``count`` of training inputs self-rationalized this
    iteration, seeded (the loop's ``SampleConfig`` checks that exactly one is given)."""
    k = count if count is not None else round(len(examples) * fraction)  # type: ignore[operator]
    k = max(1, min(k, len(examples)))
    return random.Random(seed).sample(examples, k)


def sample_to_file(
    make_backend: Callable[[], Backend],
    inputs: list[Example],
    params: SamplingParams,
    path: Path,
    *,
    max_retries: int = 2,
    batch_size: int | None = None,
    model: str | None = None,
    inputs_path: Path | None = None,
    workers: int = 1,
    devices_per_worker: int = 1,
) -> dict[str, Any]:
    """N judgments per input appended to ``path`` (one line per input), skipping inputs
    already there, so a killed run continues where it stopped. Returns counts over the file.

    ``batch_size`` inputs go to the backend at once (and are one resume step); by default
    the backend's own ``inputs_per_call``. ``model`` (the name the backend is made from) is
    part of the settings a rerun must match. ``inputs_path``, when given, receives the inputs
    (srjudge JSONL) once those checks have passed. ``workers`` > 1 splits the batches over
    that many processes (``srjudge.judging.shards``; ``make_backend`` must then pickle) and
    merges their files into ``path``: the judgments are those of one worker."""
    settings = {
        "model": model,
        "params": to_dict(params),
        "max_retries": max_retries,
        "templates": {
            tid: template_hash(tid)
            for tid in (judge_template_id(k) for k in ("pointwise", "pairwise"))
        },
    }
    job = ShardJob(
        make_backend,
        [[(ex.id, ex) for ex in inputs]],
        partial(sample_records, params=params, max_retries=max_retries),
        key_field="example_id",
        batch_size=batch_size,
        settings=settings,
        fingerprints={ex.id: example_hash(ex) for ex in inputs},
        others_refused=(
            "judgments of {n} input(s) not selected now ({shown}): it was started on other "
            "inputs (another --input, --count, --fraction or --seed), and resuming would mix "
            "them; nothing was changed. Use another output path"
        ),
    )
    done = check_files(job, path)
    if inputs_path is not None:
        write_jsonl(inputs_path, inputs)
    run_sharded(job, path, workers=workers, devices_per_worker=devices_per_worker, done=done)
    judgments = [j for _, js in load_judgments(path) for j in js]
    ok = [j for j in judgments if j.ok]
    return {
        "inputs_sampled": len(inputs),
        "judgments": len(judgments),
        "parse_failures": len(judgments) - len(ok),
        "retries": sum(j.attempts - 1 for j in judgments),
        "mean_rationale_chars": round(sum(len(j.rationale or "") for j in ok) / max(1, len(ok)), 1),
    }


def sample_records(
    backend: Backend, batch: list[Example], *, params: SamplingParams, max_retries: int
) -> list[dict[str, Any]]:
    """The sampling file's records (without ``example_id`` and ``input_sha256``) of one
    batch of inputs."""
    results = _judge_batch(backend, batch, params, score_only=False, max_retries=max_retries)
    return [
        {"kind": ex.kind, "judgments": [to_dict(j) for j in judgments]}
        for ex, judgments in zip(batch, results, strict=True)
    ]


def load_judgments(path: Path) -> Iterator[tuple[str, list[Judgment]]]:
    """(example id, judgments) per line of a file ``sample_to_file`` wrote; a line that is
    not one is a ``UserError`` naming the file and line."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                judgments = [judgment_from_dict(j) for j in row["judgments"]]
            except (ValueError, KeyError, TypeError, RecursionError) as e:
                raise UserError(
                    f"{path}:{lineno}: not a line of a judgments file (srjudge sample): "
                    f"{type(e).__name__}: {e}"
                ) from None
            yield row["example_id"], judgments
