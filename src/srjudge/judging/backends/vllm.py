"""Sampling with vLLM on a GPU (optional extra: ``pip install 'srjudge[vllm]'``).

    backend = VLLMBackend("smollm2-135m", gpu_memory_utilization=0.5)
    backend.generate([messages], SamplingParams(n=10, temperature=1.0))

vLLM is imported when a ``VLLMBackend`` is built, never at module import, so the rest of
srjudge works without it. Prompts go through ``LLM.chat``, which applies the model's own
chat template (after ``judging.chat.chat_messages`` has neutralised the model's special
tokens in the text, as for the transformers backend); all prompts of a batch are one call,
and vLLM shares the prompt's KV cache among the ``n`` samples of a prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from srjudge.judging.backends import SamplingParams
from srjudge.judging.chat import chat_messages
from srjudge.records import Message

INSTALL_HINT = (
    "the vllm backend needs vLLM, which is not installed. Install it on a Linux machine with "
    "an NVIDIA GPU: pip install 'srjudge[vllm]'. Without a GPU use --backend transformers "
    "(or --backend openai against a running vLLM server)."
)


class VLLMBackend:
    """A ``Backend`` over ``vllm.LLM``; ``options`` go to ``vllm.LLM`` unchanged
    (``dtype``, ``gpu_memory_utilization``, ``max_model_len``, ``tensor_parallel_size``, ...)."""

    inputs_per_call = 32
    """vLLM schedules many prompts at once; 32 inputs per call (and per resume step)."""

    def __init__(self, model: str, **options: Any):
        try:
            import vllm
        except ImportError as e:
            raise ImportError(INSTALL_HINT) from e
        from srjudge.models import resolve_model

        self._vllm = vllm
        self.model_path = resolve_model(model)
        self.name = f"vllm:{self.model_path}"
        self.llm = vllm.LLM(model=self.model_path, **options)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[str]]:
        if not prompts:
            return []
        # Greedy decoding gives one answer; some vLLM versions reject n > 1 with
        # temperature 0, so ask once and repeat it.
        greedy = params.temperature == 0
        sampling = self._vllm.SamplingParams(
            n=1 if greedy else params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            seed=params.seed,
        )
        conversations = [chat_messages(self.tokenizer, p) for p in prompts]
        outputs = self.llm.chat(conversations, sampling_params=sampling, use_tqdm=False)
        texts = []
        for request in outputs:
            completions = [c.text for c in sorted(request.outputs, key=lambda c: c.index)]
            texts.append(completions * params.n if greedy else completions)
        return texts
