"""``srjudge judge``: judge a JSONL of pointwise and/or pairwise examples, resumably.

    srjudge judge --model smollm2-135m --input x.jsonl --output y.jsonl
    srjudge judge --model M --input pairs.jsonl --output y.jsonl --samples 5 --both-orders
    srjudge judge --backend openai --base-url http://127.0.0.1:8000/v1 --model judge ...
    srjudge judge --backend mock --mock-output "Fine. [RESULT] 4" --model m ...

One output line per example (``srjudge.judging.files`` describes it); rerunning the same command
after an interruption, even ``kill -9``, continues where it stopped. Counts are printed and
written with the provenance to ``<output stem>.summary.json``. Exit status: 0 when the file
is complete (parse failures are counted, not errors), 1 when the backend failed, 2 for bad
input or arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srjudge.commands.options import (
    add_backend_arguments,
    backend_options,
    load_backend_from_args,
)
from srjudge.records import RecordError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="alias (srjudge models), directory or name")
    parser.add_argument("--input", required=True, help="srjudge JSONL of examples")
    parser.add_argument("--output", required=True, help="JSONL of judgments (appended, resumable)")
    add_backend_arguments(parser)
    parser.add_argument("--samples", type=int, default=1, help="judgments per example (N)")
    parser.add_argument(
        "--temperature", type=float, help="default: 0 (greedy) for 1 sample, 1.0 for several"
    )
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-retries", type=int, default=2, help="re-samples of an unparseable judgment"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="examples per backend call, and per resume step (default 8; the transformers "
        "backend decodes their samples together, up to its batch of 16 rows)",
    )
    parser.add_argument(
        "--both-orders", action="store_true", help="pairwise: also judge with responses swapped"
    )
    parser.add_argument("--score-only", action="store_true", help="ablation: no rationale")
    parser.add_argument(
        "--expected-score",
        action="store_true",
        help="pointwise: also P(1..5) after '[RESULT] ' and the expected score (transformers)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from srjudge.judging.files import judge_file

    if not Path(args.input).is_file():  # before loading a model
        print(f"error: input file {args.input} not found", file=sys.stderr)
        return 2
    try:
        backend_options(args)  # a stray flag is refused before a model is loaded
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        summary = judge_file(
            args.input,
            args.output,
            load_backend_from_args(args, args.model),
            samples=args.samples,
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            max_retries=args.max_retries,
            both_orders=args.both_orders,
            score_only=args.score_only,
            expected_score=args.expected_score,
            batch_size=args.batch_size or 8,
            progress=not args.no_progress,
            provenance={"backend": args.backend, "model_arg": args.model},
        )
    except (ImportError, FileNotFoundError, RecordError, ValueError, TypeError) as e:
        # ImportError: e.g. vllm not installed; the message says what to install
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # backend failures (OpenAIError, a broken server, ...)
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary.format())
    return 0
