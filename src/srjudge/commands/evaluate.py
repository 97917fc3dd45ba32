"""``srjudge eval``, ``srjudge compare`` and ``srjudge report``.

    srjudge eval --model smollm2-135m --benchmarks rewardbench,biggen --limit 50 --out ev/seed
    srjudge eval --model M --benchmarks rewardbench --mode pairwise --samples 5
    srjudge eval --model M --benchmarks in-domain --train-run RUN \
        --path in-domain=RUN/stages/00_data/heldout.jsonl   # overlapping items excluded
    srjudge compare ev/seed ev/iter2     # paired bootstrap on the items both judged: B - A
    srjudge report RUN [--out DIR]       # report.md + report.html

``eval`` prints each metric with its 95% bootstrap CI and writes ``metrics.json`` and
``predictions.jsonl`` to ``--out`` (rerunning the same command continues an interrupted
evaluation). Exit status: 0 done, 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srjudge.commands.options import add_backend_arguments, backend_options


def _paths(values: list[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not path:
            raise ValueError(f"--path expects BENCHMARK=PATH, got {value!r}")
        out.setdefault(name, []).append(path)
    return out


def eval_add_arguments(parser: argparse.ArgumentParser) -> None:
    from srjudge.evaluation.benchmarks import BENCHMARKS

    parser.add_argument("--model", required=True, help="alias (srjudge models), directory or name")
    parser.add_argument(
        "--benchmarks",
        default="rewardbench,biggen",
        help=f"comma-separated, from: {', '.join(BENCHMARKS)} (default: rewardbench,biggen)",
    )
    parser.add_argument("--limit", type=int, help="items per benchmark (stratified, seeded)")
    parser.add_argument("--samples", type=int, default=1, help="judgments per item (majority)")
    parser.add_argument("--out", help="output folder (default: evals/<model name>)")
    parser.add_argument(
        "--mode",
        choices=("pointwise", "pairwise"),
        help="pairwise turns rewardbench into rewardbench-pairwise",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="re-samples of an unparseable judgment (each costs a generation)",
    )
    parser.add_argument(
        "--path",
        action="append",
        metavar="BENCHMARK=PATH",
        help="data for a benchmark instead of its default (repeatable)",
    )
    parser.add_argument("--train-data", action="append", help="srjudge JSONL used in training")
    parser.add_argument("--train-run", help="a run folder: its training data is checked too")
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="keep items overlapping the training data (flagged in the output)",
    )
    add_backend_arguments(parser)


def _train_examples(args: argparse.Namespace):
    from srjudge.data.sources import load_srjudge
    from srjudge.loop.rundir import training_examples

    if not args.train_data and not args.train_run:
        return None
    out = []
    for path in args.train_data or []:
        out += load_srjudge(path).examples
    if args.train_run:
        out += training_examples(args.train_run)
    return out


def eval_run(args: argparse.Namespace) -> int:
    from srjudge.evaluation.evaluate import evaluate

    out = args.out or str(Path("evals") / Path(args.model.rstrip("/")).name)
    try:
        options = backend_options(args)
        result = evaluate(
            args.model,
            [b.strip() for b in args.benchmarks.split(",") if b.strip()],
            out_dir=out,
            limit=args.limit,
            samples=args.samples,
            seed=args.seed,
            mode=args.mode,
            paths=_paths(args.path),
            train_examples=_train_examples(args),
            allow_overlap=args.allow_overlap,
            max_new_tokens=args.max_new_tokens,
            max_retries=args.max_retries,
            backend=args.backend,
            backend_options=options,
            progress=True,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"srjudge eval: {e}", file=sys.stderr)
        return 2
    print(result.format_table())
    print(f"\nwrote {out}/metrics.json and {out}/predictions.jsonl")
    return 0


def compare_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="evaluation folder (metrics.json) A")
    parser.add_argument("run_b", metavar="RUN_B", help="evaluation folder B; deltas are B - A")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)


def compare_run(args: argparse.Namespace) -> int:
    from srjudge.evaluation.compare import compare_evals, format_deltas

    for d in (args.run_a, args.run_b):
        if not (Path(d) / "predictions.jsonl").is_file():
            print(f"srjudge compare: no predictions.jsonl in {d}", file=sys.stderr)
            return 2
    deltas = compare_evals(args.run_a, args.run_b, n_boot=args.n_boot, seed=args.seed)
    if not deltas:
        print("srjudge compare: the two evaluations share no benchmark items", file=sys.stderr)
        return 2
    print(format_deltas(deltas, args.run_a, args.run_b))
    return 0


def report_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", metavar="RUN", nargs="+", help="a run folder, or evaluation folders to tabulate"
    )
    parser.add_argument("--out", help="where report.md/report.html go (default: the run folder)")
    parser.add_argument(
        "--study",
        metavar="STUDY.db",
        help="append a human side-by-side study's results (srjudge annotate create/serve)",
    )


def report_run(args: argparse.Namespace) -> int:
    from srjudge.loop.rundir import run_report

    target = args.run[0] if len(args.run) == 1 else args.run
    out = args.out or (args.run[0] if len(args.run) == 1 else "report")
    try:
        extra = None
        if args.study:
            from srjudge.annotation.report import study_sections

            if not Path(args.study).is_file():
                raise FileNotFoundError(f"--study {args.study}: no such study file")
            extra = study_sections(args.study)
        md, html = run_report(target, out, extra)
    except FileNotFoundError as e:
        print(f"srjudge report: {e}", file=sys.stderr)
        return 2
    print(f"wrote {md}\nwrote {html}")
    return 0
