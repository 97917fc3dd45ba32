"""Backend flags shared by every verb that runs a model: judge, eval, sample, curate (and serve).

    add_backend_arguments(parser)                  # --backend, --device, --base-url, ...
    add_worker_arguments(parser)                   # --workers, --devices-per-worker (sample, eval)
    options = backend_options(args)                # load_backend(**options); refuses stray flags
    backend = load_backend_from_args(args, model)  # the backend itself

A flag meant for another backend (``--base-url`` without ``--backend openai``) is refused
with a ``ValueError`` naming it, never silently dropped; so is a ``--device`` torch cannot use
here (``cuda`` without CUDA). The OpenAI backend's ``--openai-timeout`` and
``--openai-retries`` bound what a server that never answers costs (by default up to 6
attempts of 120 s each, plus backoff). Verbs add their own model flag
(``--model``, or ``--meta-model`` for curate).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from typing import Any

from srjudge.judging.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    LOCAL_BACKENDS,
    Backend,
    SamplingParams,
    load_backend,
)
from srjudge.records import Message

DTYPES = ("float32", "bfloat16")

# flag -> (the backend it belongs to, the load_backend option it sets); "local": every
# backend that loads the model here (transformers, vllm, auto)
_BACKEND_FLAGS: dict[str, tuple[str, str]] = {
    "device": ("transformers", "device"),
    "dtype": ("local", "dtype"),
    "base_url": ("openai", "base_url"),
    "openai_timeout": ("openai", "timeout"),
    "openai_retries": ("openai", "max_retries"),
    "mock_output": ("mock", "outputs"),
}


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and the options of each backend."""
    parser.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        choices=BACKENDS,
        help="auto (default): the vLLM engine where installed and the model fits it, "
        "else transformers",
    )
    parser.add_argument("--device", help="transformers: cpu, cuda, ... (default: cuda if present)")
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        help="transformers, vllm: weights and compute (default: float32 on CPU; bfloat16 is "
        "faster but changed a trained judge's verdicts: bench/results/precision_jsft.md)",
    )
    parser.add_argument("--base-url", help="openai: endpoint (default $OPENAI_BASE_URL)")
    parser.add_argument(
        "--openai-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="openai: seconds to wait for each HTTP request (default 120)",
    )
    parser.add_argument(
        "--openai-retries",
        type=_count,
        metavar="N",
        help="openai: retries of a failed or timed-out request, with backoff (default 5)",
    )
    parser.add_argument(
        "--mock-output", action="append", metavar="TEXT", help="mock: canned output (repeatable)"
    )
    parser.add_argument(
        "--mock-delay", type=float, default=0.0, metavar="SECONDS", help=argparse.SUPPRESS
    )  # tests only: a slow mock backend, to interrupt a run mid-way


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--devices-per-worker`` (sample and eval: ``srjudge.judging.shards``)."""
    parser.add_argument(
        "--workers", type=int, default=1,
        help="processes that split the inputs, each with its own engine (same output as 1)",
    )  # fmt: skip
    parser.add_argument(
        "--devices-per-worker", type=int, default=1,
        help="GPUs each worker sees (more than 1 for an engine spanning several)",
    )  # fmt: skip


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _backends_taking(kind: str) -> tuple[tuple[str, ...], str]:
    """The ``--backend`` values a flag of ``kind`` goes with, and how an error names them
    (``auto`` may resolve to transformers, so it takes transformers' flags)."""
    if kind == "local":
        return LOCAL_BACKENDS, ", ".join(LOCAL_BACKENDS)
    if kind == "transformers":
        return ("transformers", "auto"), kind
    return (kind,), kind


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """``load_backend`` options from the flags; a flag of another backend is a ``ValueError``."""
    options: dict[str, Any] = {}
    for dest, (kind, option) in _BACKEND_FLAGS.items():
        value = getattr(args, dest)
        if value is None:  # not given (0 retries is a value)
            continue
        allowed, named = _backends_taking(kind)
        if args.backend not in allowed:
            raise ValueError(f"{_flag(dest)} is for --backend {named}")
        options[option] = value
    if args.mock_delay and args.backend != "mock":
        raise ValueError("--mock-delay is for --backend mock")
    if "device" in options:
        from srjudge.models import check_device  # imports torch: only when --device is given

        check_device(options["device"])  # --device cuda without CUDA: refused before any work
    return options


def check_model_arg(args: argparse.Namespace, model: str) -> None:
    """For the backends that load a local model, refuse a model that is no alias, directory or
    findable hub id (``models.ModelNotFoundError``) before any file is touched."""
    if args.backend in LOCAL_BACKENDS:
        from srjudge.models import check_model_name  # imports torch: only when checking

        check_model_name(model)


def load_backend_from_args(args: argparse.Namespace, model: str) -> Backend:
    """The backend the flags describe, serving ``model``."""
    backend = load_backend(args.backend, model, **backend_options(args))
    return DelayedBackend(backend, args.mock_delay) if args.mock_delay > 0 else backend


class DelayedBackend:
    """A backend that sleeps before each call (tests of interrupted runs)."""

    def __init__(self, backend: Backend, seconds: float):
        self._backend = backend
        self._seconds = seconds
        self.name = backend.name
        self.inputs_per_call = backend.inputs_per_call

    def generate(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[str]]:
        time.sleep(self._seconds)
        return self._backend.generate(prompts, params)
