"""The ``srjudge`` command line: a thin table from verbs to stage functions.

Each verb lives in a module under ``srjudge.commands`` that defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only for the verb
being run, so ``srjudge --help`` and ``srjudge data validate`` start without importing torch.

    srjudge --help
    srjudge data validate train.jsonl
    srjudge judge --model smollm2-135m --input x.jsonl --output y.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import sys

# verb -> (module under srjudge.commands, attribute prefix, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("data", "", "validate, convert and check overlap of datasets"),
    "models": ("models", "", "list model aliases, whether each is present, where it is cached"),
    "judge": ("judge", "", "judge a JSONL of pointwise or pairwise examples (resumable)"),
    "sft": ("train", "sft_", "stage: supervised fine-tuning of a seed judge"),
    "merge": ("train", "merge_", "stage: linear weight merge of two judges"),
    "sample": ("train", "sample_", "stage: self-rationalization, N judgments per input"),
    "curate": ("train", "curate_", "stage: judgments -> preference pairs"),
    "dpo": ("train", "dpo_", "stage: DPO on preference pairs"),
    "run": ("train", "run_", "the whole loop from a YAML config (resumable by stage)"),
    "demo": ("train", "demo_", "the whole loop on SmolLM2-135M with the bundled data"),
    "eval": ("evaluate", "eval_", "evaluate a judge on benchmarks, with confidence intervals"),
    "compare": ("evaluate", "compare_", "paired-bootstrap comparison of two evaluation runs"),
    "report": ("evaluate", "report_", "write report.md and report.html for a run"),
    "annotate": ("annotate", "", "human side-by-side study of two judges' rationales (web page)"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srjudge",
        description="Train and run self-rationalizing LLM judges (arXiv 2410.05495).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items())
        + "\n\nRun 'srjudge COMMAND --help' for a command's options.",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_parser().print_help()
        return 0
    if argv[0] not in COMMANDS:
        _top_parser().parse_args(argv[:1])  # prints the usage error and exits 2
    name = argv[0]
    module_name, prefix, help_ = COMMANDS[name]
    module = importlib.import_module(f"srjudge.commands.{module_name}")
    parser = argparse.ArgumentParser(prog=f"srjudge {name}", description=help_)
    getattr(module, f"{prefix}add_arguments")(parser)
    args = parser.parse_args(argv[1:])
    return int(getattr(module, f"{prefix}run")(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
