"""The dynamic batcher on its own: grouping, order, limits, failures, cancelled callers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from srjudge.serving.batcher import Batcher, BatcherStopped, QueueFull


class Recorder:
    """A ``run_group`` that records its calls (key, items, thread) and answers item * 10."""

    def __init__(self, delay: float = 0.0, fail_on: object = None):
        self.calls: list[tuple[object, list]] = []
        self.threads: set[int] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, key, items):
        self.calls.append((key, list(items)))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i * 10 for i in items]


def run(coro):
    return asyncio.run(coro)


async def started(recorder, **kw) -> Batcher:
    options = dict(max_batch=8, max_wait_s=0.1, max_queue_items=100) | kw
    batcher = Batcher(recorder, **options)
    await batcher.start()
    return batcher


def test_concurrent_jobs_share_one_call_and_get_their_own_results_in_order():
    async def main():
        rec = Recorder()
        b = await started(rec)
        out = await asyncio.gather(b.submit("k", [1, 2]), b.submit("k", [3]), b.submit("k", [4]))
        await b.stop()
        return rec, out

    rec, out = run(main())
    assert out == [[10, 20], [30], [40]]
    assert rec.calls == [("k", [1, 2, 3, 4])]
    assert threading.get_ident() not in rec.threads  # off the event loop


def test_keys_are_not_mixed():
    async def main():
        rec = Recorder()
        b = await started(rec)
        out = await asyncio.gather(b.submit("a", [1]), b.submit("b", [2]), b.submit("a", [3]))
        await b.stop()
        return rec, out

    rec, out = run(main())
    assert out == [[10], [20], [30]]
    assert rec.calls == [("a", [1, 3]), ("b", [2])]


def test_max_batch_is_respected_and_a_job_is_never_split():
    async def main():
        rec = Recorder()
        b = await started(rec, max_batch=3)
        out = await asyncio.gather(*(b.submit("k", [i, i]) for i in range(3)))
        big = await b.submit("k", [7, 7, 7, 7, 7])  # alone, larger than max_batch
        await b.stop()
        return rec, out, big

    rec, out, big = run(main())
    assert out == [[0, 0], [10, 10], [20, 20]]
    assert [items for _, items in rec.calls] == [[0, 0], [1, 1], [2, 2], [7] * 5]


def test_a_full_batch_does_not_wait_for_the_window():
    async def main():
        b = await started(Recorder(), max_batch=2, max_wait_s=5.0)
        t0 = time.monotonic()
        await asyncio.gather(b.submit("k", [1]), b.submit("k", [2]))
        elapsed = time.monotonic() - t0
        await b.stop()
        return elapsed

    assert run(main()) < 2.0


def test_a_lone_job_waits_at_most_the_window():
    async def main():
        b = await started(Recorder(), max_wait_s=0.05)
        t0 = time.monotonic()
        await b.submit("k", [1])
        elapsed = time.monotonic() - t0
        await b.stop()
        return elapsed

    assert 0.04 < run(main()) < 1.0


def test_callers_answered_by_a_call_can_join_the_job_that_queued_during_it():
    """A job queued while the model ran does not leave at once with a batch of one: the
    window reopens when the call ends, and the callers just answered join it."""

    async def main():
        rec = Recorder(delay=0.4)
        b = await started(rec, max_wait_s=0.15)

        async def client(i: int, late: float) -> None:
            await asyncio.sleep(late)
            await b.submit("k", [i])
            await asyncio.sleep(0.02)  # the answered caller's next request, a moment later
            await b.submit("k", [i + 100])

        await asyncio.gather(client(1, 0), client(2, 0), client(3, 0.25))
        await b.stop()
        return rec

    rec = run(main())
    # call 1: [1, 2]; 3 queued during it; 101 and 102 arrive 20 ms after it ends and join 3
    assert [sorted(items) for _, items in rec.calls][:2] == [[1, 2], [3, 101, 102]]


def test_a_failing_job_fails_alone():
    async def main():
        rec = Recorder(fail_on=2)
        b = await started(rec)
        out = await asyncio.gather(
            b.submit("k", [1]), b.submit("k", [2]), b.submit("k", [3]), return_exceptions=True
        )
        await b.stop()
        return rec, out

    rec, out = run(main())
    assert out[0] == [10] and out[2] == [30]
    assert isinstance(out[1], ValueError) and "bad item 2" in str(out[1])
    assert rec.calls[0] == ("k", [1, 2, 3])  # tried together first, then one by one
    assert sorted(items for _, items in rec.calls[1:]) == [[1], [2], [3]]


def test_a_cancelled_caller_does_not_break_the_batch():
    async def main():
        rec = Recorder(delay=0.2)
        b = await started(rec, max_wait_s=0.05)
        first = asyncio.create_task(b.submit("k", [1]))
        second = asyncio.create_task(b.submit("k", [2]))
        await asyncio.sleep(0.1)  # both are in the running call now
        first.cancel()
        out = await second
        waiting = asyncio.create_task(b.submit("k", [5]))  # queued behind nothing: runs
        gone = asyncio.create_task(b.submit("k", [6]))
        await asyncio.sleep(0)
        gone.cancel()
        later = await waiting
        await b.stop()
        return rec, out, later, first.cancelled()

    rec, out, later, cancelled = run(main())
    assert cancelled and out == [20] and later == [50]
    assert [items for _, items in rec.calls] == [[1, 2], [5]]  # 6 was skipped before running


def test_queue_limit_and_stop():
    async def main():
        b = await started(Recorder(delay=0.3), max_queue_items=3, max_wait_s=0.0)
        running = asyncio.create_task(b.submit("k", [1]))
        await asyncio.sleep(0.05)  # running now; the queue is empty again
        queued = asyncio.create_task(b.submit("k", [2, 3, 4]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="limit 3"):
            await b.submit("k", [5])
        await b.stop()
        results = await asyncio.gather(running, queued, return_exceptions=True)
        with pytest.raises(BatcherStopped):
            await b.submit("k", [1])
        return results

    results = run(main())
    assert all(isinstance(r, BatcherStopped) for r in results)


def test_stats_are_reported_per_call():
    seen = []

    async def main():
        b = await started(Recorder(), on_batch=seen.append)
        await asyncio.gather(b.submit("k", [1, 2]), b.submit("k", [3]))
        await b.stop()

    run(main())
    assert [(s.key, s.items, s.jobs, s.ok) for s in seen] == [("k", 3, 2, True)]


def test_doctests():
    import doctest

    from srjudge.serving import jobs, settings

    for module in (jobs, settings):
        assert doctest.testmod(module).failed == 0, module.__name__
