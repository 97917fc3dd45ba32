"""Dynamic batching: concurrent requests' items gathered into one model call, off the event loop.

    batcher = Batcher(run_group, max_batch=32, max_wait_s=0.02, max_queue_items=4096)
    await batcher.start()
    results = await batcher.submit(key, items)       # from any request handler
    await batcher.stop()

``run_group(key, items) -> results`` is the model work (one result per item, in order). It runs
in one worker thread, so the model is only ever called by one thread at a time and the event
loop keeps answering (health checks, new requests) while it runs.

How a batch forms: the first waiting job opens a window of ``max_wait_s``; jobs that arrive in
it join until ``max_batch`` items are gathered (a job is never split: one that would overflow a
non-empty batch waits for the next; a job alone may exceed ``max_batch``). While the model runs,
new jobs queue up; when it finishes, the window opens again from that moment, so the callers
just answered (who often send their next request at once) can join the next batch instead of
waiting behind a batch of the one job that queued during the call. A full batch never waits.
Jobs with equal ``key`` (same route and sampling settings) share one ``run_group`` call; a batch
with several keys makes one call per key, in arrival order. Results are split back to each job
in order.

Failures stay with their job: when a call with several jobs raises, each of its jobs is retried
alone, so only the job that causes the error gets it. A job whose caller went away (its future
cancelled, e.g. the client disconnected) is skipped if it has not started, and its results are
dropped if it has; the others in its batch are unaffected.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RunGroup = Callable[[Hashable, list[Any]], Sequence[Any]]


class QueueFull(RuntimeError):
    """More items are waiting than ``max_queue_items``: the caller should retry later."""


class BatcherStopped(RuntimeError):
    """The batcher is stopped (server shutting down)."""


@dataclass(frozen=True)
class BatchStats:
    """What one ``run_group`` call did, for metrics."""

    key: Hashable
    items: int
    jobs: int
    seconds: float
    ok: bool


@dataclass
class _Job:
    key: Hashable
    items: list[Any]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)


def group_by_key(jobs: Sequence[_Job]) -> list[list[_Job]]:
    """Jobs grouped by key, groups in order of first arrival, jobs in arrival order."""
    groups: dict[Hashable, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.key, []).append(job)
    return list(groups.values())


def take_batch(pending: collections.deque[_Job], max_batch: int) -> list[_Job]:
    """Pop jobs from the left of ``pending`` while they fit in ``max_batch`` items (the first
    always goes); cancelled jobs are dropped on the way."""
    batch: list[_Job] = []
    total = 0
    while pending:
        job = pending[0]
        if job.future.done():
            pending.popleft()
            continue
        if batch and total + len(job.items) > max_batch:
            break
        batch.append(pending.popleft())
        total += len(job.items)
    return batch


class Batcher:
    def __init__(
        self,
        run_group: RunGroup,
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue_items: int,
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        if max_batch < 1 or max_wait_s < 0 or max_queue_items < 1:
            raise ValueError("max_batch and max_queue_items must be >= 1, max_wait_s >= 0")
        self._run_group = run_group
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue_items = max_queue_items
        self._on_batch = on_batch
        self._pending: collections.deque[_Job] = collections.deque()
        self._running: list[_Job] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._last_call_end = float("-inf")

    @property
    def queued_items(self) -> int:
        return sum(len(j.items) for j in self._pending if not j.future.done())

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srjudge-model")
        self._task = asyncio.create_task(self._loop(), name="srjudge-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for job in [*self._running, *self._pending]:
            _resolve(job.future, error=BatcherStopped("the server is shutting down"))
        self._pending.clear()
        self._running = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, key: Hashable, items: Sequence[Any]) -> list[Any]:
        """Queue ``items`` under ``key`` and wait for their results (in order)."""
        if self._task is None or self._wakeup is None:
            raise BatcherStopped("the batcher is not running")
        if not items:
            return []
        if self.queued_items + len(items) > self.max_queue_items:
            raise QueueFull(
                f"{self.queued_items} items are waiting for the model "
                f"(limit {self.max_queue_items}); retry later"
            )
        job = _Job(key, list(items), asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def _loop(self) -> None:
        assert self._wakeup is not None
        while True:
            if not any(not j.future.done() for j in self._pending):
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather_window()
            self._running = take_batch(self._pending, self.max_batch)
            for group in group_by_key(self._running):
                await self._run(group)
            self._running = []

    async def _gather_window(self) -> None:
        """Wait until ``max_batch`` items are queued or ``max_wait_s`` has passed since the
        oldest job arrived or, if later, since the last model call ended."""
        assert self._wakeup is not None
        live = [j for j in self._pending if not j.future.done()]
        opened = max(min(j.queued_at for j in live), self._last_call_end)
        deadline = opened + self.max_wait_s
        while self.queued_items < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self, jobs: list[_Job]) -> None:
        jobs = [j for j in jobs if not j.future.done()]
        if not jobs:
            return
        try:
            results = await self._call(jobs)
        except Exception as e:  # noqa: BLE001 - handed to the callers, never raised here
            if len(jobs) > 1:
                log.warning("batch of %d jobs failed (%s); running each alone", len(jobs), e)
                for job in jobs:
                    await self._run([job])
                return
            _resolve(jobs[0].future, error=e)
            return
        start = 0
        for job in jobs:
            _resolve(job.future, result=results[start : start + len(job.items)])
            start += len(job.items)

    async def _call(self, jobs: list[_Job]) -> list[Any]:
        key = jobs[0].key
        items = [item for job in jobs for item in job.items]
        started = time.monotonic()
        ok = False
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._executor, self._run_group, key, items)
            results = list(results)
            if len(results) != len(items):
                raise RuntimeError(f"run_group returned {len(results)} results for {len(items)}")
            ok = True
            return results
        finally:
            self._last_call_end = time.monotonic()
            if self._on_batch is not None:
                stats = BatchStats(key, len(items), len(jobs), time.monotonic() - started, ok)
                self._on_batch(stats)


def _resolve(
    future: asyncio.Future, *, result: Any = None, error: BaseException | None = None
) -> None:
    if future.done():  # the caller went away: drop it
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
