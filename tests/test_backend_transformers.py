"""TransformersBackend on tiny-random: the shared-prefix path decodes exactly like plain
``generate`` under greedy decoding, sampling is seeded, n completions per prompt, option
probabilities sum to one."""

from __future__ import annotations

import math

import pytest
import torch

from srjudge.judging.backends import Backend, SamplingParams, VerdictScorer, load_backend
from srjudge.judging.backends.transformers import (
    TransformersBackend,
    _prompt_seed,
    sample_shared_prefix,
)
from srjudge.records import Message

PROMPTS = [
    [Message("user", "Rate this response: the capital of France is Paris.")],
    [Message("system", "You are a strict judge."), Message("user", "2 + 2 = 5. Score it.")],
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls gain nothing from threads, and on a busy shared CPU, OpenMP threads
    waiting on each other make these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def naive(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(tiny_model_dir, device="cpu", naive=True)


def test_protocols(backend):
    assert isinstance(backend, Backend)
    assert isinstance(backend, VerdictScorer)
    assert backend.name.startswith("transformers:")


def test_registry_loads_alias(tiny_model_dir):
    backend = load_backend("transformers", "tiny-random", device="cpu")
    assert backend.path == tiny_model_dir


@pytest.mark.parametrize("n", [1, 3])
def test_greedy_matches_naive_generate(backend, naive, n):
    params = SamplingParams(n=n, temperature=0, max_new_tokens=24)
    ours = backend.generate_ids(PROMPTS, params)
    theirs = naive.generate_ids(PROMPTS, params)
    assert ours == theirs
    for samples in ours:
        assert len(samples) == n
        assert all(s == samples[0] for s in samples)
    assert len(set(ours[0][0])) > 3  # tiny-random decodes varied tokens, not one repeated


def test_chunked_batches_match(backend, tiny_model_dir):
    chunked = TransformersBackend(tiny_model_dir, device="cpu", batch_size=2)
    params = SamplingParams(n=5, temperature=0, max_new_tokens=12)
    assert chunked.generate_ids(PROMPTS, params) == backend.generate_ids(PROMPTS, params)


def _one_at_a_time(backend, prompts, params):
    """Each prompt decoded alone by ``sample_shared_prefix`` with the generator the backend
    gives it at its index: what the packed path must reproduce."""
    settings = backend._settings(params)
    out = []
    for index, prompt in enumerate(prompts):
        seed = _prompt_seed(params.seed, index)
        generator = torch.Generator().manual_seed(seed)
        ids = backend.prompt_ids(prompt)
        out.append(sample_shared_prefix(backend.model, ids, settings, generator=generator,
                                        batch_size=backend.batch_size))  # fmt: skip
    return out


# prompts of different lengths, so packed rows are left-padded by different amounts
PACKED = [*PROMPTS, [Message("user", "Short.")], [Message("user", "A longer question " * 9)]]


@pytest.mark.parametrize("batch_size", [2, 4, 16])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_packed_prompts_decode_as_if_alone(tiny_model_dir, batch_size, temperature):
    """Several prompts share decode steps (left-padded, masked, own positions and own
    generator); each prompt's samples equal those it gets decoded alone."""
    packed = TransformersBackend(tiny_model_dir, device="cpu", batch_size=batch_size)
    params = SamplingParams(n=3, temperature=temperature, max_new_tokens=10, seed=3)
    got = packed.generate_ids(PACKED, params)
    assert [len(s) for s in got] == [3] * len(PACKED)
    assert got == _one_at_a_time(packed, PACKED, params)


def test_packed_rows_finish_independently(backend):
    """A row that stops leaves the batch; the others continue with the right positions."""
    end = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    calls = {"n": 0}

    def stop_first_row_once(module, inputs, logits):
        if logits.shape[0] == 1:  # a prompt's prefill (batch 1), not a packed decode step
            return logits
        calls["n"] += 1
        if calls["n"] == 3:  # third decode step: row 0 ends
            logits = logits.clone()
            logits[0, -1, end] = 1e4
        return logits

    params = SamplingParams(n=1, temperature=0, max_new_tokens=6)
    expected = backend.generate_ids(PACKED, params)
    hook = backend.model.lm_head.register_forward_hook(stop_first_row_once)
    try:
        got = backend.generate_ids(PACKED, params)
    finally:
        hook.remove()
    assert calls["n"] > 3
    assert got[0] == [expected[0][0][:2]]
    assert got[1:] == expected[1:]


def test_sampling_is_seeded(backend):
    params = SamplingParams(n=4, temperature=1.0, top_p=0.9, max_new_tokens=16, seed=7)
    first = backend.generate(PROMPTS, params)
    assert backend.generate(PROMPTS, params) == first
    assert [len(s) for s in first] == [4, 4]
    assert len(set(first[0])) > 1  # samples differ from each other
    other = backend.generate(PROMPTS, SamplingParams(**{**params.__dict__, "seed": 8}))
    assert other != first


def test_naive_sampling_is_seeded(naive):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=1)
    assert naive.generate(PROMPTS[:1], params) == naive.generate(PROMPTS[:1], params)


def test_stops_at_end_of_turn(backend):
    """With the end-of-turn token made certain, every sample stops at once and is empty."""
    end = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end in backend.stop_ids
    hook = backend.model.lm_head.register_forward_hook(
        lambda module, inputs, logits: logits.index_fill(-1, torch.tensor([end]), 1e4)
    )
    try:
        texts = backend.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, max_new_tokens=8))
    finally:
        hook.remove()
    assert texts == [["", ""], ["", ""]]


def test_min_new_tokens_forces_length(tiny_model_dir):
    forced = TransformersBackend(tiny_model_dir, device="cpu", min_new_tokens=10)
    ids = forced.generate_ids(PROMPTS[:1], SamplingParams(n=3, max_new_tokens=10, seed=2))
    assert [len(s) for s in ids[0]] == [10, 10, 10]


def test_option_probs(backend):
    probs = backend.option_probs(PROMPTS[0], "Looks right. [RESULT] ", list("12345"))
    assert len(probs) == 5
    assert math.isclose(sum(probs), 1.0, rel_tol=1e-5)
    assert all(0 < p < 1 for p in probs)


def test_option_probs_rejects_multi_token_options(backend):
    with pytest.raises(ValueError, match="single token"):
        backend.option_probs(PROMPTS[0], "[RESULT] ", ["1", "excellent answer"])
