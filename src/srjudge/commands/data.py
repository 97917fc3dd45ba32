"""``srjudge data``: validate, convert and check overlap of datasets (no torch imported).

    srjudge data validate FILE [--format F] [--good OUT] [--quarantine OUT]
    srjudge data convert IN --format F --out OUT.jsonl
    srjudge data overlap TRAIN EVAL [--format-train F] [--format-eval F] [--ngram 13]

``--format`` is a loader name from ``srjudge.data.LOADERS`` (default ``srjudge``). Every bad row
is reported on stderr as ``file:line: field 'name': message`` (a row that loaded but has an
unknown or misspelt field as ``file:line: warning: field ...``); counts go to stdout. validate,
convert and overlap exit 1 when any row was bad (convert still writes the good rows, overlap
still reports), 2 when a file cannot be read, an output path is refused, or (overlap) a file
yields no row at all.
"""

from __future__ import annotations

import argparse
import sys

from srjudge import data
from srjudge.commands.argtypes import positive_int
from srjudge.data.validate import EXAMPLE_KEYS
from srjudge.errors import UserError
from srjudge.paths import looks_like, refuse_foreign_file, refuse_same_paths
from srjudge.records import write_jsonl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    formats = sorted(data.LOADERS)
    fmt = {"choices": formats, "metavar": "F", "help": "source format: " + ", ".join(formats)}

    v = sub.add_parser("validate", help="report every bad row; write good rows and a quarantine")
    v.add_argument("file", help="JSONL/JSON/parquet file (.gz allowed) or a Hub dataset id")
    v.add_argument("--format", default="srjudge", **fmt)
    v.add_argument("--good", metavar="OUT", help="write good rows here (srjudge JSONL)")
    v.add_argument("--quarantine", metavar="OUT", help="write bad rows here (raw text + error)")

    c = sub.add_parser("convert", help="write any loader's output as srjudge JSONL")
    c.add_argument("file", help="input file or Hub dataset id")
    c.add_argument("--format", required=True, **fmt)
    c.add_argument("--out", required=True, help="output srjudge JSONL")

    o = sub.add_parser("overlap", help="contamination: eval prompts found in training prompts")
    o.add_argument("train", help="training data")
    o.add_argument("eval", help="evaluation data")
    o.add_argument("--format-train", default="srjudge", **fmt)
    o.add_argument("--format-eval", default="srjudge", **fmt)
    o.add_argument(
        "--ngram", type=positive_int, default=13, help="shared word n-gram length (default 13)"
    )


def _report_errors(errors: list[data.RowError]) -> None:
    for e in errors:
        print(e, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        return {"validate": _validate, "convert": _convert, "overlap": _overlap}[args.action](args)
    except (FileNotFoundError, UserError) as e:  # a whole file unreadable: say why
        print(f"error: {e}", file=sys.stderr)
        return 2


def _validate(args: argparse.Namespace) -> int:
    report = data.validate_file(args.file, args.format, args.good, args.quarantine)
    _report_errors(report.warnings + report.errors)
    print(report.summary())
    return 1 if report.bad else 0


def _convert(args: argparse.Namespace) -> int:
    refuse_same_paths({"input": args.file}, {"--out": args.out})
    refuse_foreign_file(args.out, "--out", "an srjudge examples file", looks_like(EXAMPLE_KEYS))
    result = data.load(args.file, args.format)
    _report_errors(result.warnings + result.errors)
    n = write_jsonl(args.out, result.examples)
    print(
        f"{args.file} [{args.format}]: rows: {result.rows}, wrote {n} to {args.out}, "
        f"bad: {len(result.errors)}"
    )
    return 1 if result.errors else 0


def _overlap(args: argparse.Namespace) -> int:
    train = data.load(args.train, args.format_train)
    evaluation = data.load(args.eval, args.format_eval)
    errors = train.errors + evaluation.errors
    _report_errors(errors)
    report = data.find_overlap(train.examples, evaluation.examples, ngram=args.ngram)
    print(report.summary())
    for eval_id in report.exact_ids:
        print(f"exact\t{eval_id}\t{report.matches[eval_id]}")
    for eval_id in report.ngram_ids:
        print(f"{args.ngram}-gram\t{eval_id}\t{report.matches[eval_id]}")
    for loaded in (train, evaluation):
        if not loaded.examples:  # nothing to compare: the check did not happen
            print(f"error: {loaded.path}: no row loaded [{loaded.fmt}]", file=sys.stderr)
            return 2
    if errors:  # rows not compared: the check is incomplete
        n = len(errors)
        print(f"error: {n} row(s) could not be loaded, so were not checked", file=sys.stderr)
        return 1
    return 0
