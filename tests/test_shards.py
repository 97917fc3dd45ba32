"""Sharded judging (srjudge.judging.shards) with the mock backend: batches are cut once from
the whole list, so any number of workers writes exactly one worker's file; a crashed worker's
shard (records plus a torn line) is resumed, a partly written batch is redone whole, and the
merge refuses two different records of one key. The real 2-process runs are in
test_distributed.py."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from srjudge.judging.backends import MockBackend, SamplingParams
from srjudge.judging.sampling import sample_to_file
from srjudge.judging.shards import (
    ShardJob,
    check_files,
    done_keys,
    merge_shards,
    mine,
    plan_batches,
    run_sharded,
    run_worker,
    shard_files,
    shard_path,
)
from srjudge.records import Message, PointwiseExample, Rubric

RUBRIC = Rubric("Correct?", ("wrong", "mostly wrong", "partly", "mostly", "right"))


def _examples(n: int) -> list[PointwiseExample]:
    return [
        PointwiseExample(f"e{i}", [Message("user", f"What is {i}+1?")], str(i + 1), RUBRIC)
        for i in range(n)
    ]


def judge_by_call(prompt, i: int) -> str:
    """Depends on the prompt and sample index only, like a seeded backend."""
    verdict = 1 + (len(prompt[-1].content) + i) % 5
    return f"Judged from the text. [RESULT] {verdict}"


def mock_factory() -> MockBackend:
    return MockBackend(judge_by_call)


def batch_of_3() -> MockBackend:
    backend = MockBackend(judge_by_call)
    backend.inputs_per_call = 3
    return backend


def _job(groups, batch_size=None, factory=mock_factory) -> ShardJob:
    def handle(backend, payloads):
        return [{"n": len(payloads), "text": backend.generate([[Message("user", p)]],
                                                               SamplingParams())[0][0]}
                for p in payloads]  # fmt: skip

    return ShardJob(factory, groups, handle, key_field="key", batch_size=batch_size)


@pytest.mark.parametrize(
    "sizes, size, workers, expected",
    [
        ([5], 2, 2, [[["k0", "k1"], ["k4"]], [["k2", "k3"]]]),
        ([2, 3], 2, 2, [[["k0", "k1"], ["k4"]], [["k2", "k3"]]]),  # never across groups
        ([3], 5, 3, [[["k0", "k1", "k2"]], [], []]),
        ([4], 1, 1, [[["k0"], ["k1"], ["k2"], ["k3"]]]),
    ],
)
def test_batches_are_cut_once_and_dealt_round_robin(sizes, size, workers, expected):
    keys = iter(f"k{i}" for i in range(sum(sizes)))
    groups = [[(next(keys), None) for _ in range(n)] for n in sizes]
    batches = plan_batches(groups, size)
    got = [[[k for k, _ in b] for b in mine(batches, w, workers)] for w in range(workers)]
    assert got == expected


def test_shard_names_and_listing(tmp_path):
    path = tmp_path / "judgments.jsonl"
    assert shard_path(path, 0, 1) == path
    for w in range(2):
        shard_path(path, w, 2).write_text("")
    (tmp_path / "judgments.inputs.jsonl").write_text("")  # not a shard
    assert [p.name for p in shard_files(path)] == ["judgments.w0of2.jsonl", "judgments.w1of2.jsonl"]


def _fresh(tmp_path: Path, job: ShardJob) -> str:
    path = tmp_path / "fresh" / "out.jsonl"
    run_sharded(job, path)
    return path.read_text()


def test_workers_in_turn_write_what_one_worker_writes(tmp_path):
    """Each worker's share run in this process, then merged: the one-worker file."""
    groups = [[(f"k{i}", f"item {i}") for i in range(7)]]
    job = _job(groups, batch_size=2)
    path = tmp_path / "out.jsonl"
    for w in (1, 0, 2):  # any order
        run_worker(job, path, w, 3, set())
    assert len(shard_files(path)) == 3 and not path.exists()
    merge_shards(job, path)
    assert not shard_files(path)
    assert path.read_text() == _fresh(tmp_path, job)


def test_crashed_shards_resume_and_a_partial_batch_is_redone_whole(tmp_path):
    groups = [[(f"k{i}", f"item {i}") for i in range(6)]]
    job = _job(groups, factory=batch_of_3)
    fresh = _fresh(tmp_path, job).splitlines()
    path = tmp_path / "out.jsonl"
    # worker 0 of 2 finished batch 0 (k0-k2); worker 1 wrote k3 of batch 1, then died mid-line
    shard_path(path, 0, 2).write_text("".join(line + "\n" for line in fresh[:3]))
    shard_path(path, 1, 2).write_text(fresh[3] + "\n" + fresh[4][:10])
    assert done_keys(path, "key") == {"k0", "k1", "k2", "k3"}  # complete lines only
    with pytest.warns(UserWarning, match="torn last line"):
        assert check_files(job, path) == {"k0", "k1", "k2", "k3"}
    calls = []

    def counting() -> MockBackend:
        backend = batch_of_3()
        calls.append(backend)
        return backend

    run_sharded(_job(groups, factory=counting), path)  # resumed with one worker
    assert path.read_text().splitlines() == fresh
    assert not shard_files(path)
    # batch 1 was sent again whole (3 items), batch 0 not at all
    assert [len(c.calls) for c in calls] == [3]


def test_merge_waits_for_missing_items_and_refuses_conflicts(tmp_path):
    groups = [[("a", "x"), ("b", "y")]]
    job = _job(groups)
    path = tmp_path / "out.jsonl"
    shard_path(path, 0, 2).write_text(json.dumps({"key": "a", "v": 1}) + "\n")
    merge_shards(job, path)  # "b" is missing: nothing merged yet
    assert not path.exists() and len(shard_files(path)) == 1
    shard_path(path, 1, 2).write_text(json.dumps({"key": "a", "v": 2}) + "\n")
    with pytest.raises(ValueError, match="'a' differs"):
        merge_shards(job, path)


def test_sample_to_file_with_two_spawned_workers_equals_one(tmp_path):
    inputs = _examples(5)
    params = SamplingParams(n=3, seed=7)
    one = tmp_path / "one.jsonl"
    two = tmp_path / "two.jsonl"
    counts_one = sample_to_file(mock_factory, inputs, params, one)
    counts_two = sample_to_file(partial(MockBackend, judge_by_call), inputs, params, two, workers=2)
    assert two.read_text() == one.read_text()
    assert counts_two == counts_one
    assert not shard_files(two)


def test_other_settings_are_refused_when_only_shards_hold_records(tmp_path):
    from dataclasses import replace

    from srjudge.errors import UserError

    job = replace(_job([[("a", "x"), ("b", "y")]]), settings={"temperature": 1.0})
    path = tmp_path / "out.jsonl"
    run_worker(job, path, 0, 2, set())  # a 2-worker run that died after worker 0's batch
    assert shard_files(path) and not path.exists()
    with pytest.raises(UserError, match="other settings.*temperature: 1.0 -> 0.5"):
        check_files(replace(job, settings={"temperature": 0.5}), path)
    assert check_files(job, path) == {"a"}  # the same settings resume


def test_sampling_refuses_shards_of_other_inputs(tmp_path):
    from srjudge.errors import UserError

    path = tmp_path / "j.jsonl"
    params = SamplingParams(n=2)
    job_inputs = _examples(4)
    sample_to_file(mock_factory, job_inputs[:2], params, path)  # another selection, finished
    path.rename(shard_path(path, 0, 2))  # as if a 2-worker run had left it
    with pytest.raises(UserError, match="not selected now"):
        sample_to_file(mock_factory, job_inputs[2:], params, path)
