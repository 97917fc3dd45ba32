"""A resumable judging job split over W worker processes, merged as if one process ran it.

    job = ShardJob(make_backend, items, handle, key_field="example_id")
    run_sharded(job, Path("judgments.jsonl"), workers=2)

``items`` are ``(key, payload)`` pairs in output order, in groups (a batch never spans two
groups: the eval stage groups by benchmark). They are cut into batches once, from the whole
list (``plan_batches``), so the batches are the same whatever W is; batch b goes to worker
b mod W. ``handle(backend, payloads)`` returns one record per payload; the record is written
with ``{key_field: key}`` in front. A backend's output for a batch depends only on the batch
(its prompts and the sampling parameters, seeds included), so W workers produce exactly the
records one worker does.

Files: with one worker, records are appended to ``path`` itself (as before workers existed);
worker w of W appends to ``<stem>.w<w>of<W>.jsonl`` beside it, through ``ResumableJSONL``.
When every worker has finished, the records of ``path`` and of all shard files are merged
into ``path`` in item order (written to a temp file, then renamed) and the shards removed.

Resume: before starting, ``path`` and its shards are checked (``check_files``: the settings in
``path``'s sidecar, changed inputs, other items) and the keys already in any of them are done.
A batch whose items are all done is skipped; a batch only partly done (a worker was killed
in the middle of appending it) is run again whole, and only its missing items are appended,
so a batch is always sampled as one unit. A worker that fails leaves its shard for the rerun
and the job raises naming it.

Processes: the calling process is worker 0 (it may pass the backend it already holds);
workers 1..W-1 are spawned and build their own with ``make_backend``. On CUDA machines worker
w sees devices w*k .. w*k+k-1 (``devices_per_worker`` k) of the visible ones through
``CUDA_VISIBLE_DEVICES`` (worker 0, the caller, uses the first ones by default); on CPU the
cores are shared out.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from srjudge.errors import UserError
from srjudge.judging.backends import Backend
from srjudge.resume import ResumableJSONL

Item = tuple[str, Any]
"""``(key, payload)``: the key identifies the record in the output file."""


@dataclass(frozen=True)
class ShardJob:
    make_backend: Callable[[], Backend]
    """Builds the worker's engine; must pickle when W > 1 (a module-level function or a
    ``functools.partial`` of one, not a lambda)."""
    groups: Sequence[Sequence[Item]]
    """Items in output order; batches are cut within each group."""
    handle: Callable[[Backend, list[Any]], list[dict[str, Any]]]
    """``(backend, payloads) -> one record per payload`` (picklable, like ``make_backend``)."""
    key_field: str
    batch_size: int | None = None
    """Items per batch (and per resume step); None = the backend's ``inputs_per_call``."""
    progress: bool = False
    """Show a progress bar even when stderr is not a terminal."""
    settings: Mapping[str, Any] | None = None
    """What made the records (``ResumableJSONL`` settings): kept in ``path``'s sidecar
    ``<stem>.settings.json``, shared by the shards; a rerun with others is refused."""
    fingerprints: Mapping[str, Any] | None = None
    """key -> the hash of the item's input, written into each record (``fingerprint_field``)
    and checked on resume: an item whose input changed under the same key is refused."""
    fingerprint_field: str = "input_sha256"
    others_refused: str | None = None
    """Refuse files that hold records of items not in this job (another selection), saying
    ``f"{file} holds " + others_refused.format(n=count, shown=some_keys)``."""


def plan_batches(groups: Sequence[Sequence[Item]], size: int) -> list[list[Item]]:
    """Consecutive batches of at most ``size`` items within each group, in order.

    >>> g = [[("a", 0), ("b", 0), ("c", 0)], [("d", 0)]]
    >>> [[k for k, _ in b] for b in plan_batches(g, 2)]
    [['a', 'b'], ['c'], ['d']]
    """
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    return [list(group[i : i + size]) for group in groups for i in range(0, len(group), size)]


def mine(batches: list[list[Item]], worker: int, workers: int) -> list[list[Item]]:
    """The batches worker ``worker`` of ``workers`` runs: b mod W == w.

    >>> mine([[("a", 0)], [("b", 0)], [("c", 0)]], 1, 2)
    [[('b', 0)]]
    """
    return batches[worker::workers]


def shard_path(path: Path, worker: int, workers: int) -> Path:
    """``judgments.jsonl`` -> ``judgments.w1of2.jsonl``; one worker writes ``path`` itself.

    >>> shard_path(Path("out/judgments.jsonl"), 1, 2).name
    'judgments.w1of2.jsonl'
    """
    if workers == 1:
        return path
    return path.with_name(f"{path.stem}.w{worker}of{workers}{path.suffix}")


def shard_files(path: Path) -> list[Path]:
    """Every shard file of ``path`` left by workers (of any W)."""
    return sorted(path.parent.glob(f"{path.stem}.w*of*{path.suffix}"))


def _open(job: ShardJob, f: Path, path: Path) -> ResumableJSONL:
    """``f`` (``path`` or one of its shards) checked against ``path``'s settings sidecar."""
    return ResumableJSONL(
        f,
        key=job.key_field,
        settings=job.settings,
        settings_path=path.with_suffix(".settings.json"),
        fingerprint=job.fingerprint_field if job.fingerprints is not None else None,
    )


def check_files(job: ShardJob, path: Path) -> set[str]:
    """Open the shards, then ``path`` (created if absent): settings, changed inputs and, with
    ``others_refused``, records of other items are refused before anything is written; a torn
    last line is dropped. Returns the keys already done."""
    keys = {key for group in job.groups for key, _ in group}
    done: set[str] = set()
    for f in [*shard_files(path), path]:  # shards first: path may rewrite an unused sidecar
        with _open(job, f, path) as sink:
            if job.fingerprints is not None:
                sink.refuse_changed(job.fingerprints)
            other = sorted(sink.done - keys)
            if job.others_refused is not None and other:
                shown = ", ".join(repr(k) for k in other[:3]) + (", ..." if len(other) > 3 else "")
                raise UserError(
                    f"{f} holds " + job.others_refused.format(n=len(other), shown=shown)
                )
            done |= sink.done
    return done


def done_keys(path: Path, key_field: str) -> set[str]:
    """Keys already written to ``path`` or its shards (complete lines)."""
    return {k for f in [path, *shard_files(path)] if f.is_file() for k in _lines(f, key_field)}


# ---------------------------------------------------------------------------------------
# one worker


def run_worker(
    job: ShardJob,
    path: Path,
    worker: int,
    workers: int,
    done: set[str],
    backend: Backend | None = None,
) -> int:
    """Run this worker's batches that are not done (with ``backend``, else one built by
    ``job.make_backend``); returns the records appended."""
    if all(key in done for group in job.groups for key, _ in group):
        return 0
    backend = backend or job.make_backend()
    batches = plan_batches(job.groups, job.batch_size or backend.inputs_per_call)
    todo = [b for b in mine(batches, worker, workers) if any(k not in done for k, _ in b)]
    if not todo:
        return 0
    appended = 0
    bar = tqdm(total=sum(map(len, todo)), desc=f"{path.stem} [{worker + 1}/{workers}]",
               unit="item", disable=not (job.progress or sys.stderr.isatty()))  # fmt: skip
    with bar, _open(job, shard_path(path, worker, workers), path) as sink:
        for batch in todo:
            records = job.handle(backend, [payload for _, payload in batch])
            if len(records) != len(batch):
                raise RuntimeError(f"{len(records)} records for a batch of {len(batch)} items")
            for (key, _), record in zip(batch, records, strict=True):
                if key not in done and key not in sink.done:
                    sink.append({job.key_field: key, **record, **_fingerprint(job, key)})
                    appended += 1
            bar.update(len(batch))
    return appended


def _fingerprint(job: ShardJob, key: str) -> dict[str, Any]:
    return {} if job.fingerprints is None else {job.fingerprint_field: job.fingerprints[key]}


def _worker_main(job: ShardJob, path: Path, worker: int, workers: int, done: set[str],
                 devices: list[str] | None, threads: int) -> None:  # fmt: skip
    """Entry of a spawned worker: pin its devices and threads, then run."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    import torch

    torch.set_num_threads(threads)
    run_worker(job, path, worker, workers, done)


# ---------------------------------------------------------------------------------------
# the job


def worker_devices(workers: int, per_worker: int) -> list[list[str]] | None:
    """CUDA devices of each worker, or None without CUDA. Too few devices is an error."""
    import torch

    if not torch.cuda.is_available():
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if workers * per_worker > len(ids):
        raise ValueError(
            f"{workers} workers x {per_worker} devices need {workers * per_worker} GPUs; "
            f"{len(ids)} visible"
        )
    return [ids[w * per_worker : (w + 1) * per_worker] for w in range(workers)]


def run_sharded(
    job: ShardJob,
    path: Path,
    *,
    workers: int = 1,
    devices_per_worker: int = 1,
    backend: Backend | None = None,
    done: set[str] | None = None,
) -> None:
    """Run ``job`` into ``path`` with ``workers`` processes, then merge; see the module
    docstring. This process is worker 0 (with ``backend`` if given: a caller that already
    holds one); workers 1..W-1 are spawned. ``done``: what ``check_files`` returned, for a
    caller that checked first. Raises naming the workers that failed."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    done = check_files(job, path) if done is None else done
    if workers == 1:
        run_worker(job, path, 0, 1, done, backend)
    elif any(key not in done for group in job.groups for key, _ in group):
        _run_workers(job, path, workers, devices_per_worker, done, backend)
    if shard_files(path):
        merge_shards(job, path)


def _run_workers(job: ShardJob, path: Path, workers: int, per_worker: int, done: set[str],
                 backend: Backend | None) -> None:  # fmt: skip
    import multiprocessing

    import torch

    devices = worker_devices(workers, per_worker)
    threads = max(1, torch.get_num_threads() // workers)
    context = multiprocessing.get_context("spawn")  # no fork: CUDA and threads don't survive it
    procs = {
        w: context.Process(
            target=_worker_main,
            args=(job, path, w, workers, done, devices and devices[w], threads),
            name=f"srjudge-worker-{w}",
        )
        for w in range(1, workers)
    }
    for p in procs.values():
        p.start()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run_worker(job, path, 0, workers, done, backend)  # worker 0: this process
    except BaseException:
        for p in procs.values():
            p.terminate()
        raise
    finally:
        torch.set_num_threads(before)
        for p in procs.values():
            p.join()
    failed = [f"worker {w} (exit code {p.exitcode})" for w, p in procs.items() if p.exitcode]
    if failed:
        raise RuntimeError(
            f"{path}: {', '.join(failed)} of {workers} failed (see the output above); the "
            "records written so far are kept in the shard files and a rerun continues"
        )


def merge_shards(job: ShardJob, path: Path) -> None:
    """Write the records of ``path`` and its shards into ``path`` in item order (then records
    of other items, e.g. an earlier evaluation's) and remove the shards. If an item is still
    missing (a worker did not finish) everything is left as it is, for the rerun."""
    kept = _lines(path, job.key_field) if path.is_file() else {}
    new: dict[str, str] = {}
    for shard in shard_files(path):
        for key, line in _lines(shard, job.key_field).items():
            if kept.get(key, line) != line or new.setdefault(key, line) != line:
                raise ValueError(f"{shard}: {job.key_field}={key!r} differs from an earlier "
                                 "record of the same key; remove one of them")  # fmt: skip
    keys = [key for group in job.groups for key, _ in group]
    if any(key not in kept and key not in new for key in keys):
        return
    lines = {**new, **kept}
    wanted = set(keys)
    order = [*keys, *(k for k in kept if k not in wanted)]
    order += sorted(set(new) - wanted - set(kept))
    tmp = path.with_name(path.name + ".merging")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines[k] + "\n" for k in order)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for shard in shard_files(path):
        shard.unlink()


def _lines(path: Path, key_field: str) -> dict[str, str]:
    """``key -> line`` of the complete lines of a ``ResumableJSONL`` file."""
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    return {str(json.loads(ln)[key_field]): ln for ln in complete.splitlines() if ln.strip()}
