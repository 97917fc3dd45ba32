"""``srjudge prompt``: print, for each example, exactly what a local model receives.

    srjudge prompt examples.jsonl --model smollm2-135m        # the rendered text
    srjudge prompt examples.jsonl --model tiny-random --ids   # token ids, a JSON list a line
    srjudge prompt pairs.jsonl --model M --both-orders --score-only

The text is the judge prompt (``judging.prompts.judge_prompt``, text under judgment
neutralised by ``judging.neutralize``) through the model's own chat template after its special
tokens in the text are neutralised too (``judging.chat``): the same path the transformers
backend samples from and SFT/DPO train on. Each example is printed as a header line
``==> ID (KIND, N tokens of CONTEXT) <==``, then the text; with ``--ids`` only the token ids,
one JSON list per example (per order with ``--both-orders``), in input order. A neutralised
delimiter carries a zero width space (U+200B) after its first character: invisible in a
terminal, visible in the ids. Only the tokenizer and config are loaded, never the weights.
Exit status: 0, or 2 for bad input, an unknown model or a prompt that would not tokenize
safely.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="srjudge JSONL of pointwise and/or pairwise examples")
    parser.add_argument(
        "--model", required=True, help="alias (srjudge models) or save_pretrained directory"
    )
    parser.add_argument("--ids", action="store_true", help="token ids, one JSON list a line")
    parser.add_argument("--score-only", action="store_true", help="the score-only templates")
    parser.add_argument(
        "--both-orders", action="store_true", help="pairwise: also the swapped prompt"
    )


def _prompts(examples, score_only: bool, both_orders: bool) -> Iterator[tuple[str, str, list]]:
    """(label, kind, messages) per prompt the judge would be sent."""
    from srjudge.judging.judge import swapped
    from srjudge.judging.prompts import judge_prompt
    from srjudge.records import PairwiseExample

    for ex in examples:
        yield ex.id, ex.kind, judge_prompt(ex, score_only=score_only)
        if both_orders and isinstance(ex, PairwiseExample):
            yield f"{ex.id} (swapped)", ex.kind, judge_prompt(swapped(ex), score_only=score_only)


def run(args: argparse.Namespace) -> int:
    from srjudge.data.sources import load
    from srjudge.records import RecordError

    if not Path(args.file).is_file():
        print(f"error: input file {args.file} not found", file=sys.stderr)
        return 2
    try:
        examples = load(args.file, "srjudge").strict()  # the one reader: file:line:field
        tokenizer, context = _tokenizer(args.model)
        _print(tokenizer, context, _prompts(examples, args.score_only, args.both_orders), args.ids)
    except (RecordError, ValueError, OSError) as e:  # ModelNotFoundError, ControlTokenError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _tokenizer(model: str):
    """The model's tokenizer and context length (``max_position_embeddings``, or None)."""
    from transformers import AutoConfig, AutoTokenizer

    from srjudge.models import resolve_model

    path = resolve_model(model)
    config = AutoConfig.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path), getattr(config, "max_position_embeddings", None)


def _print(tokenizer, context: int | None, prompts, ids_only: bool) -> None:
    from srjudge.judging.chat import chat_ids, chat_text

    for label, kind, messages in prompts:
        ids = chat_ids(tokenizer, messages)  # checks that no text became control tokens
        if ids_only:
            print(json.dumps(ids))
            continue
        of = f" of {context}" if context else ""
        over = " -- LONGER THAN THE CONTEXT" if context and len(ids) >= context else ""
        print(f"==> {label} ({kind}, {len(ids)} tokens{of}){over} <==")
        print(chat_text(tokenizer, messages))
