"""Local sampling with Hugging Face transformers, sharing each prompt's KV cache across samples.

Self-rationalization samples N judgments of the same judge prompt, and the prompt (rubric,
instruction, response: hundreds of tokens) is much longer than what is generated. Plain
``generate(num_return_sequences=N)`` prefills N identical copies of it. Here the prompt is
prefilled once, all but its last token, into a ``DynamicCache``; its keys and values are copied
into N rows of a buffer with room for the new tokens (so decoding writes in place instead of
concatenating a growing cache every step) and the N samples are decoded together by a
small sampling loop (temperature, top-p, seeded ``torch.Generator``) starting from the last
prompt token. Rows that reach an end token leave the batch, so finished samples cost nothing.

    from srjudge.judging.backends import SamplingParams, load_backend
    backend = load_backend("transformers", "smollm2-135m")
    texts = backend.generate([messages], SamplingParams(n=8, temperature=1.0))  # [[8 strings]]

``naive=True`` uses plain ``model.generate`` instead (for benchmarks and equivalence tests).
Under greedy decoding both paths give the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from srjudge.judging.backends import SamplingParams, check_prompt_lengths
from srjudge.judging.chat import chat_ids, chat_text, option_context
from srjudge.models import check_device, load_model_and_tokenizer, resolve_model
from srjudge.records import Message

END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class DecodeSettings:
    """What one sampling call needs beyond the prompt (shared by both paths)."""

    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    stop_ids: tuple[int, ...]
    min_new_tokens: int = 0
    """Stop tokens are masked out before this many tokens (benchmarks force a length)."""


def _filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (nucleus)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Drop a token when the mass before it already reaches top_p (the top token always stays).
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
    drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def _next_tokens(
    logits: torch.Tensor, settings: DecodeSettings, generator: torch.Generator | None
) -> torch.Tensor:
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    logits = _filter_top_p(logits / settings.temperature, settings.top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


class _BufferLayer(DynamicLayer):
    """A KV cache layer with room reserved for the tokens still to come.

    ``DynamicLayer`` concatenates on every step, copying the whole (N-times expanded) prompt
    cache per generated token; here each step writes its token in place and the layer exposes
    a view of the filled part. Built by ``_packed_cache`` from one or more prompt prefixes.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        """``keys``/``values``: ``[batch, heads, capacity, head_dim]`` buffers whose first
        ``length`` positions are filled."""
        super().__init__()
        self.lazy_initialization(keys, values)
        self._keys, self._values, self._length = keys, values, length
        self._expose()

    def _expose(self) -> None:
        self.keys = self._keys[:, :, : self._length]
        self.values = self._values[:, :, : self._length]

    def update(self, key_states, value_states, *args, **kwargs):
        end = self._length + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # out of reserved room: grow (not expected)
            self._keys = torch.cat([self.keys, key_states], dim=-2)
            self._values = torch.cat([self.values, value_states], dim=-2)
        else:
            self._keys[:, :, self._length : end] = key_states
            self._values[:, :, self._length : end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys = self._keys[indices]
        self._values = self._values[indices]
        self._expose()


def _packed_cache(prefixes: Sequence[DynamicCache], counts: Sequence[int], extra: int):
    """A new cache with ``counts[i]`` rows holding prefix ``i``, each right-aligned to the
    longest prefix (left padding, to be masked), plus room for ``extra`` tokens. The
    prefixes themselves are untouched, so they can seed several chunks."""
    cache = DynamicCache()
    width = max(p.get_seq_length() for p in prefixes)
    if width == 0:
        return cache
    rows = sum(counts)
    for i in range(len(prefixes[0].layers)):
        first = prefixes[0].layers[i].keys
        shape = (rows, first.shape[1], width + extra, first.shape[3])
        keys, values = first.new_zeros(shape), first.new_zeros(shape)
        row = 0
        for prefix, count in zip(prefixes, counts, strict=True):
            layer = prefix.layers[i]
            start = width - layer.keys.shape[-2]
            keys[row : row + count, :, start:width] = layer.keys
            values[row : row + count, :, start:width] = layer.values
            row += count
        cache.layers.append(_BufferLayer(keys, values, width))
    return cache


def _expanded_cache(prefix: DynamicCache, batch: int, extra: int):
    """``batch`` copies of the batch-1 ``prefix`` plus room for ``extra`` tokens."""
    return _packed_cache([prefix], [batch], extra)


def _prefill(model, prompt_ids: torch.Tensor) -> DynamicCache:
    """The KV cache of all but the prompt's last token (which starts decoding)."""
    prefix = DynamicCache(config=model.config)
    if prompt_ids.numel() > 1:
        model(input_ids=prompt_ids[None, :-1].to(model.device), past_key_values=prefix,
              logits_to_keep=1)  # fmt: skip
    return prefix


@torch.inference_mode()
def sample_shared_prefix(
    model,
    prompt_ids: torch.Tensor,
    settings: DecodeSettings,
    *,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> list[list[int]]:
    """``settings.n`` continuations of one prompt (1-D ids), the prompt prefilled once.

    Returns token ids per sample, cut before the first stop token. ``batch_size`` caps how
    many samples decode together; larger ``n`` reuses the prefilled cache chunk by chunk.
    """
    prompt_ids = prompt_ids.to(model.device)
    prefix = _prefill(model, prompt_ids)
    chunk = batch_size or settings.n
    out: list[list[int]] = []
    for start in range(0, settings.n, chunk):
        k = min(chunk, settings.n - start)
        cache = _expanded_cache(prefix, k, settings.max_new_tokens)
        out.extend(_decode(model, cache, prompt_ids[-1], k, settings, generator))
    return out


def _decode(
    model,
    cache,
    last_prompt_token: torch.Tensor,
    k: int,
    settings: DecodeSettings,
    generator: torch.Generator | None,
) -> list[list[int]]:
    """Decode ``k`` rows from an already-expanded cache; finished rows are dropped."""
    stop = torch.tensor(settings.stop_ids, device=model.device, dtype=torch.long)
    tokens = last_prompt_token.repeat(k)
    rows = list(range(k))  # live row -> sample index
    results: list[list[int]] = [[] for _ in range(k)]
    for step in range(settings.max_new_tokens):
        logits = model(input_ids=tokens[:, None], past_key_values=cache).logits[:, -1, :]
        logits = logits.float()
        if step < settings.min_new_tokens and stop.numel():
            logits[:, stop] = float("-inf")
        tokens = _next_tokens(logits, settings, generator)
        finished = torch.isin(tokens, stop)
        for row, tok, done in zip(rows, tokens.tolist(), finished.tolist(), strict=True):
            if not done:
                results[row].append(tok)
        if finished.any():
            keep = (~finished).nonzero().squeeze(-1)
            if keep.numel() == 0:
                break
            rows = [rows[i] for i in keep.tolist()]
            tokens = tokens[keep]
            cache.batch_select_indices(keep)
    return results


def _pieces(n: int, chunk: int) -> list[int]:
    """``n`` samples split as ``sample_shared_prefix`` splits them (chunks of ``chunk``)."""
    return [min(chunk, n - start) for start in range(0, n, chunk)]


@torch.inference_mode()
def sample_packed(
    model,
    prompts: Sequence[torch.Tensor],
    settings: DecodeSettings,
    *,
    generators: Sequence[torch.Generator | None],
    batch_size: int,
) -> list[list[list[int]]]:
    """``settings.n`` continuations of each prompt, several prompts decoded together.

    With few samples per prompt (evaluation: one), decoding one prompt at a time leaves the
    matrix units idle on a batch of 1. Here each prompt is prefilled once on its own (no
    padding in the prefill), then up to ``batch_size`` rows from several prompts share each
    decode step: their caches are left-padded to a common width and masked, and each row
    carries its own positions. Each prompt samples from its own generator, over the same
    row groups as ``sample_shared_prefix``, so its samples do not depend on which prompts it
    was packed with (up to float rounding in the padded attention).
    """
    units = [(i, k) for i in range(len(prompts)) for k in _pieces(settings.n, batch_size)]
    chunks: list[list[tuple[int, int]]] = []
    for unit in units:  # greedy packing, in prompt order
        if chunks and sum(k for _, k in chunks[-1]) + unit[1] <= batch_size:
            chunks[-1].append(unit)
        else:
            chunks.append([unit])
    last_use = {i: c for c, chunk in enumerate(chunks) for i, _ in chunk}
    prefixes: dict[int, DynamicCache] = {}
    out: list[list[list[int]]] = [[] for _ in prompts]
    for c, chunk in enumerate(chunks):
        for i, _ in chunk:
            if i not in prefixes:
                prefixes[i] = _prefill(model, prompts[i])
        results = _decode_packed(model, chunk, prompts, prefixes, settings, generators)
        for (i, _), samples in zip(chunk, results, strict=True):
            out[i].extend(samples)
        for i, _ in chunk:  # free a prompt's prefix after its last chunk
            if last_use[i] == c:
                prefixes.pop(i, None)
    return out


def _decode_packed(model, chunk, prompts, prefixes, settings, generators):
    """Decode the rows of one packed chunk; returns the samples of each (prompt, count)."""
    device = model.device
    counts = [k for _, k in chunk]
    owners = torch.tensor([u for u, k in enumerate(counts) for _ in range(k)], device=device)
    lengths = torch.tensor([prompts[i].numel() - 1 for i, _ in chunk], device=device)
    cache = _packed_cache([prefixes[i] for i, _ in chunk], counts, settings.max_new_tokens)
    width = cache.get_seq_length()
    lengths = lengths.repeat_interleave(torch.tensor(counts, device=device))
    mask = (torch.arange(width, device=device)[None, :] >= (width - lengths)[:, None]).long()
    positions = lengths.clone()  # the last prompt token sits at position len(prompt) - 1
    tokens = torch.cat([prompts[i][-1:].repeat(k) for i, k in chunk]).to(device)
    stop = torch.tensor(settings.stop_ids, device=device, dtype=torch.long)
    unit_generators = [generators[i] for i, _ in chunk]
    rows = list(range(len(owners)))  # live row -> row index
    results: list[list[int]] = [[] for _ in rows]
    for step in range(settings.max_new_tokens):
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        output = model(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=positions[:, None],
            past_key_values=cache,
        )
        logits = output.logits[:, -1, :].float()
        if step < settings.min_new_tokens and stop.numel():
            logits[:, stop] = float("-inf")
        tokens = _next_tokens_grouped(logits, settings, unit_generators, owners)
        finished = torch.isin(tokens, stop)
        for row, tok, done in zip(rows, tokens.tolist(), finished.tolist(), strict=True):
            if not done:
                results[row].append(tok)
        positions = positions + 1
        if finished.any():
            keep = (~finished).nonzero().squeeze(-1)
            if keep.numel() == 0:
                break
            rows = [rows[i] for i in keep.tolist()]
            tokens, positions, mask, owners = (
                tokens[keep],
                positions[keep],
                mask[keep],
                owners[keep],
            )
            cache.batch_select_indices(keep)
    grouped, start = [], 0
    for k in counts:
        grouped.append(results[start : start + k])
        start += k
    return grouped


def _next_tokens_grouped(logits, settings, generators, owners):
    """``_next_tokens`` with the rows of each unit (``owners``: row -> unit, one prompt's
    piece) drawn from that unit's generator, as if the piece were decoded alone."""
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    probs = _filter_top_p(logits / settings.temperature, settings.top_p).softmax(dim=-1)
    tokens = torch.empty(len(owners), dtype=torch.long, device=logits.device)
    for unit in owners.unique_consecutive().tolist():
        rows = (owners == unit).nonzero().squeeze(-1)
        tokens[rows] = torch.multinomial(probs[rows], 1, generator=generators[unit]).squeeze(-1)
    return tokens


@torch.inference_mode()
def sample_naive(
    model,
    prompt_ids: torch.Tensor,
    settings: DecodeSettings,
    *,
    pad_token_id: int,
) -> list[list[int]]:
    """The baseline: ``model.generate`` prefilling ``n`` copies of the prompt. Sampling uses
    the global torch RNG (seed it first)."""
    ids = prompt_ids.to(model.device)[None, :]
    greedy = settings.temperature == 0
    # generate refuses num_return_sequences > 1 when greedy; a batch of n copies is the same.
    if greedy:
        ids = ids.expand(settings.n, -1)
    sampling = (
        {} if greedy else {"temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0}
    )
    output = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=not greedy,
        num_return_sequences=1 if greedy else settings.n,
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens,
        eos_token_id=list(settings.stop_ids),
        pad_token_id=pad_token_id,
        **sampling,
    )
    results = []
    for row in output[:, ids.shape[1] :].tolist():
        cut = next((i for i, t in enumerate(row) if t in settings.stop_ids), len(row))
        results.append(row[:cut])
    return results


def _resolve_dtype(dtype: torch.dtype | str | None, device: str) -> torch.dtype:
    if dtype is None:
        return torch.float32 if device == "cpu" else torch.bfloat16
    if isinstance(dtype, str):
        return getattr(torch, dtype)
    return dtype


def _prompt_seed(seed: int, index: int) -> int:
    """A distinct, reproducible generator seed per (seed, prompt index)."""
    return (seed * 1_000_003 + index) % (2**63)


class TransformersBackend:
    """``Backend`` and ``VerdictScorer`` over a local causal LM (alias, directory or hub id).

    ``batch_size``: most samples decoded together (n above it is done in chunks that reuse
    the prefilled prompt). ``naive``: use ``model.generate`` (prefills n prompt copies).
    ``min_new_tokens``: forbid stopping earlier (benchmarks only).
    """

    inputs_per_call = 1  # the N samples of one input fill a decode batch (Backend's doc)

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int = 16,
        naive: bool = False,
        min_new_tokens: int = 0,
        **_,
    ):
        self.device = check_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.path = resolve_model(model)
        self.name = f"transformers:{self.path}"
        self.batch_size = batch_size
        self.naive = naive
        self.min_new_tokens = min_new_tokens
        self.model, self.tokenizer = load_model_and_tokenizer(
            self.path, dtype=_resolve_dtype(dtype, self.device), device=self.device
        )
        self.stop_ids = self._stop_ids()
        # most positions (prompt + new tokens) the model takes; None if its config has none
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    def _stop_ids(self) -> tuple[int, ...]:
        ids: set[int] = set()
        eos = self.model.generation_config.eos_token_id
        ids.update([eos] if isinstance(eos, int) else eos or [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        end_of_turn = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if end_of_turn is not None and end_of_turn != self.tokenizer.unk_token_id:
            ids.add(end_of_turn)
        return tuple(sorted(ids))

    def prompt_ids(self, prompt: Sequence[Message]) -> torch.Tensor:
        """The chat-templated prompt, ending with the assistant turn's opening, as 1-D ids
        (``judging.chat``: text inside the messages never becomes control tokens)."""
        return torch.tensor(chat_ids(self.tokenizer, prompt), dtype=torch.long)

    def prompt_text(self, prompt: Sequence[Message]) -> str:
        return chat_text(self.tokenizer, prompt)

    def _settings(self, params: SamplingParams) -> DecodeSettings:
        return DecodeSettings(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_new_tokens=params.max_new_tokens,
            stop_ids=self.stop_ids,
            min_new_tokens=min(self.min_new_tokens, params.max_new_tokens),
        )

    def generate_ids(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[list[int]]]:
        """Like ``generate`` but returns token ids (stop token excluded)."""
        settings = self._settings(params)
        ids = [self.prompt_ids(p) for p in prompts]
        check_prompt_lengths([len(x) for x in ids], params.max_new_tokens, self.context_length)
        seeds = [_prompt_seed(params.seed, index) for index in range(len(prompts))]
        if not self.naive and len(ids) > 1 and min(x.numel() for x in ids) > 1:
            generators = [torch.Generator(device=self.model.device).manual_seed(s) for s in seeds]
            return sample_packed(self.model, ids, settings, generators=generators,
                                 batch_size=self.batch_size)  # fmt: skip
        out = []
        for prompt_ids, seed in zip(ids, seeds, strict=True):
            if self.naive:
                with torch.random.fork_rng(devices=[] if self.device == "cpu" else None):
                    torch.manual_seed(seed)
                    pad = self.tokenizer.pad_token_id
                    pad = self.stop_ids[0] if pad is None else pad
                    out.append(sample_naive(self.model, prompt_ids, settings, pad_token_id=pad))
            else:
                generator = torch.Generator(device=self.model.device).manual_seed(seed)
                out.append(
                    sample_shared_prefix(
                        self.model,
                        prompt_ids,
                        settings,
                        generator=generator,
                        batch_size=self.batch_size,
                    )
                )
        return out

    def generate(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[str]]:
        """For each prompt, ``params.n`` completions, special tokens skipped."""
        return [
            [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in samples]
            for samples in self.generate_ids(prompts, params)
        ]

    @torch.inference_mode()
    def option_probs(
        self, prompt: Sequence[Message], prefix: str, options: Sequence[str]
    ) -> list[float]:
        """P(option | chat prompt + assistant ``prefix``), renormalised over ``options``.

        Each option must add exactly one token after the longest token prefix that all
        ``prefix + option`` tokenizations share (e.g. prefix "... [RESULT] " and "1".."5").
        """
        context_ids, option_ids = option_context(self.tokenizer, prompt, prefix, options)
        context = torch.tensor([context_ids], device=self.model.device)
        logits = self.model(input_ids=context, logits_to_keep=1).logits[0, -1].float()
        probs = logits[option_ids].softmax(dim=-1)
        return probs.tolist()
