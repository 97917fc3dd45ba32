"""The ``srjudge`` command line: a thin table from verbs to stage functions.

Each verb lives in a module under ``srjudge.commands`` that defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only for the verb
being run, so ``srjudge --help`` and ``srjudge data validate`` start without importing torch.

    srjudge --help
    srjudge data validate train.jsonl
    srjudge judge --model smollm2-135m --input x.jsonl --output y.jsonl

Errors: a user error (``srjudge.errors.UserError``, any ``ValueError``, a file that cannot be
read or written, a missing optional package) prints one line, ``srjudge VERB: error: ...``,
and exits 2; Ctrl-C prints ``srjudge VERB: interrupted`` and exits 130; anything else is a bug:
one line naming the exception, exit 1. ``SRJUDGE_DEBUG=1`` shows the traceback of all three.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import yaml

# verb -> (module under srjudge.commands, attribute prefix, one-line help, where the work is done
# under src/srjudge/): ``srjudge --help`` prints the last column, so any stage is one hop away
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "data": ("data", "", "validate, convert, check overlap of datasets", "data/"),
    "models": ("models", "", "model aliases, whether present, where cached", "models.py"),
    "judge": ("judge", "", "judge a JSONL of examples (resumable)", "judging/files.py"),
    "prompt": ("prompt", "", "print exactly what the model receives", "judging/chat.py"),
    "sft": ("train", "sft_", "stage: SFT of a seed judge", "training/sft.py"),
    "merge": ("train", "merge_", "stage: linear weight merge of two judges", "training/merge.py"),
    "sample": (
        "train",
        "sample_",
        "stage: self-rationalization, N judgments",
        "judging/sampling.py",
    ),
    "curate": ("train", "curate_", "stage: judgments -> preference pairs", "training/curate.py"),
    "dpo": ("train", "dpo_", "stage: DPO on preference pairs", "training/dpo.py"),
    "run": ("train", "run_", "the whole loop from a YAML config (resumable)", "loop/run.py"),
    "demo": ("train", "demo_", "the whole loop on SmolLM2-135M, bundled data", "loop/run.py"),
    "eval": (
        "evaluate",
        "eval_",
        "evaluate a judge on benchmarks, with CIs",
        "evaluation/evaluate.py",
    ),
    "compare": (
        "evaluate",
        "compare_",
        "paired bootstrap of two evaluations",
        "evaluation/compare.py",
    ),
    "report": ("evaluate", "report_", "report.md + report.html of a run", "evaluation/report.py"),
    "annotate": ("annotate", "", "human side-by-side study of rationales", "annotation/"),
    "serve": ("serve", "", "a judge as an HTTP service (grade, compare, reward)", "serving/"),
}


def _top_parser() -> argparse.ArgumentParser:
    rows = [f"  {name:<9} {help_:<47} {where}" for name, (*_, help_, where) in COMMANDS.items()]
    parser = argparse.ArgumentParser(
        prog="srjudge",
        description="Train and run self-rationalizing LLM judges (arXiv 2410.05495).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"  {'command':<9} {'what it does':<47} code (under src/srjudge/)\n"
        + "\n".join(rows)
        + "\n\nThe CLI of each verb is in srjudge/commands/; the layers: docs/DESIGN.md."
        + "\nRun 'srjudge COMMAND --help' for a command's options.",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


EXPECTED_ERRORS = (ValueError, OSError, ImportError, yaml.YAMLError)
"""User errors: ``UserError`` and ``RecordError`` are ``ValueError``s; ``OSError``: a file
that cannot be read or written; ``ImportError``: an optional package not installed;
``YAMLError``: a config file that is not YAML."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_parser().print_help()
        return 0
    if argv[0] not in COMMANDS:
        _top_parser().parse_args(argv[:1])  # prints the usage error and exits 2
    name = argv[0]
    debug = os.environ.get("SRJUDGE_DEBUG", "") not in ("", "0")
    try:
        return _run(name, argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\nsrjudge {name}: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as e:
        if debug:
            raise
        print(f"srjudge {name}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: one line, the traceback on demand
        if debug:
            raise
        print(
            f"srjudge {name}: unexpected error: {type(e).__name__}: {e} "
            "(set SRJUDGE_DEBUG=1 to see the traceback)",
            file=sys.stderr,
        )
        return 1


def _run(name: str, argv: list[str]) -> int:
    module_name, prefix, help_, _ = COMMANDS[name]
    module = importlib.import_module(f"srjudge.commands.{module_name}")
    parser = argparse.ArgumentParser(prog=f"srjudge {name}", description=help_)
    getattr(module, f"{prefix}add_arguments")(parser)
    args = parser.parse_args(argv[1:])
    return int(getattr(module, f"{prefix}run")(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
