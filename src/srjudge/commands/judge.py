"""``srjudge judge``: judge a JSONL of pointwise and/or pairwise examples, resumably.

    srjudge judge --model smollm2-135m --input x.jsonl --output y.jsonl
    srjudge judge --model M --input pairs.jsonl --output y.jsonl --samples 5 --both-orders
    srjudge judge --backend openai --base-url http://127.0.0.1:8000/v1 --model judge ...
    srjudge judge --backend mock --mock-output "Fine. [RESULT] 4" --model m ...

One output line per example (``srjudge.judging.files`` describes it); rerunning the same command
after an interruption, even ``kill -9``, continues where it stopped. Counts are printed and
written with the provenance to ``<output stem>.summary.json``. Exit status: 0 when the file
is complete (parse failures are counted, not errors), 1 when the backend failed, 2 for bad
input or arguments. Bad input is refused before anything is written: see
``srjudge.judging.files`` (paths, settings of a resumed file, changed input rows).
"""

from __future__ import annotations

import argparse
import sys

from srjudge.commands.argtypes import (
    non_negative_float,
    non_negative_int,
    positive_int,
    probability,
)
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
    parser.add_argument("--samples", type=positive_int, default=1, help="judgments per example (N)")
    parser.add_argument(
        "--temperature",
        type=non_negative_float,
        help="default: 0 (greedy) for 1 sample, 1.0 for several",
    )
    parser.add_argument("--top-p", type=probability, default=1.0, help="in (0, 1]")
    parser.add_argument("--max-new-tokens", type=positive_int, default=512)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--max-retries",
        type=non_negative_int,
        default=2,
        help="re-samples of an unparseable judgment",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
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
    from srjudge.judging.files import check_paths, judge_file

    try:  # before loading a model: the paths, and a stray flag
        check_paths(args.input, args.output)
        backend_options(args)
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
