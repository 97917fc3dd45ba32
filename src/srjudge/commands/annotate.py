"""``srjudge annotate``: a blind human side-by-side study of two judges' rationales.

    srjudge annotate create --a PRED_A --b PRED_B --out study.db [--all] [--limit K] [--seed S]
                            [--examples FILE] [--label-a NAME] [--label-b NAME]
    srjudge annotate add-annotator study.db NAME [--base-url URL] [--new-token]
    srjudge annotate serve study.db [--host 127.0.0.1] [--port 8080] [--public]
    srjudge annotate report study.db [--out DIR]
    srjudge annotate export study.db --format label-studio|jsonl --out PATH
    srjudge annotate import study.db EXPORT.json

PRED_A / PRED_B are ``srjudge eval`` evaluation folders (or their ``predictions.jsonl``) or
``srjudge judge`` output files of the same items (``srjudge.annotation.inputs``). Exit
status: 0 done, 2 bad input or arguments (the message names file, line and field).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    c = sub.add_parser("create", help="build a study from two predictions files")
    c.add_argument("--a", required=True, metavar="PRED_A", help="model A's predictions")
    c.add_argument("--b", required=True, metavar="PRED_B", help="model B's predictions")
    c.add_argument("--out", required=True, metavar="STUDY.db", help="new study file")
    c.add_argument("--all", action="store_true", help="also items where the verdicts differ")
    c.add_argument("--limit", type=int, metavar="K", help="draw K items (seeded)")
    c.add_argument("--seed", type=int, default=0, help="item sample, order and sides (default 0)")
    c.add_argument(
        "--examples",
        action="append",
        metavar="FILE",
        help="srjudge JSONL of the judged examples (default: found from the predictions)",
    )
    c.add_argument("--label-a", help="name of model A in reports (default: from the path)")
    c.add_argument("--label-b", help="name of model B in reports")

    a = sub.add_parser("add-annotator", help="register an annotator; prints their URL")
    a.add_argument("study")
    a.add_argument("name")
    a.add_argument(
        "--base-url",
        default="http://127.0.0.1:8080",
        help="where the server is reached (default http://127.0.0.1:8080)",
    )
    a.add_argument("--new-token", action="store_true", help="replace an existing annotator's link")

    s = sub.add_parser("serve", help="serve the annotation page (uvicorn)")
    s.add_argument("study")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--public", action="store_true", help="allow a non-loopback --host")

    r = sub.add_parser("report", help="win rates, CIs, agreement, reasons, plot")
    r.add_argument("study")
    r.add_argument("--out", help="folder for the report (default: <study>_report)")
    r.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")

    e = sub.add_parser("export", help="Label Studio tasks + config, or JSONL of labels")
    e.add_argument("study")
    e.add_argument("--format", required=True, choices=("label-studio", "jsonl"))
    e.add_argument("--out", required=True, help="folder (label-studio) or file (jsonl)")

    i = sub.add_parser("import", help="read a Label Studio JSON export into the study")
    i.add_argument("study")
    i.add_argument("export", help="Label Studio JSON export file")


def run(args: argparse.Namespace) -> int:
    from srjudge.annotation.inputs import StudyInputError
    from srjudge.annotation.labelstudio import ImportErrorLS
    from srjudge.annotation.store import StudyError

    actions = {
        "create": _create,
        "add-annotator": _add_annotator,
        "serve": _serve,
        "report": _report,
        "export": _export,
        "import": _import,
    }
    try:
        return actions[args.action](args)
    except (StudyInputError, StudyError, ImportErrorLS) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _create(args: argparse.Namespace) -> int:
    from srjudge.annotation.study import create_study

    counts = create_study(
        args.a,
        args.b,
        args.out,
        keep_all=args.all,
        limit=args.limit,
        seed=args.seed,
        examples=args.examples,
        label_a=args.label_a,
        label_b=args.label_b,
    )
    left = ", ".join(f"{k}: {v}" for k, v in counts["left_out"].items()) or "none"
    print(
        f"{args.out}: {counts['kept']} items of {counts['judged']} judged by both "
        f"(left out: {left}); add annotators with: srjudge annotate add-annotator {args.out} NAME"
    )
    return 0


def _add_annotator(args: argparse.Namespace) -> int:
    from srjudge.annotation import store

    with store.opened(args.study) as conn:
        token = store.add_annotator(conn, args.name, new_token=args.new_token)
    print(f"{args.base_url.rstrip('/')}/t/{token}")
    print(f"(personal link of {args.name}: shown once, only its hash is stored)", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from srjudge.annotation import store
    from srjudge.annotation.app import check_host, serve

    check_host(args.host, args.public)
    with store.opened(args.study) as conn:
        n, people = store.item_count(conn), store.annotators(conn)
    print(
        f"serving {args.study}: {n} items, {len(people)} annotators, on "
        f"http://{args.host}:{args.port} (Ctrl-C stops; labels are saved as they come)",
        flush=True,
    )
    serve(args.study, host=args.host, port=args.port, public=args.public)
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from srjudge.annotation.report import write_study_report

    out = args.out or str(Path(args.study).with_suffix("")) + "_report"
    md, html, _ = write_study_report(args.study, out, n_boot=args.n_boot)
    print(md.read_text(encoding="utf-8"))
    print(f"wrote {md}, {html}", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from srjudge.annotation import labelstudio

    if args.format == "jsonl":
        n = labelstudio.export_jsonl(args.study, args.out)
        print(f"wrote {n} labels to {args.out}")
    else:
        tasks, config = labelstudio.export_label_studio(args.study, args.out)
        print(f"wrote {tasks} (import as tasks) and {config} (the project's labelling config)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from srjudge.annotation.labelstudio import import_label_studio

    counts = import_label_studio(args.study, args.export)
    print(
        f"{args.export}: {counts['annotations']} labels imported from {counts['tasks']} tasks "
        f"({counts['cancelled']} cancelled annotations skipped, "
        f"{counts['unlabelled_tasks']} tasks without annotations)"
    )
    return 0
