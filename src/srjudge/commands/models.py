"""``srjudge models``: the model aliases, whether each is built, and where it is cached.

    srjudge models            # a table
    srjudge models --json     # one JSON object per alias

An alias is built into the cache (``$SRJUDGE_CACHE`` or ``~/.cache/srjudge``) the first time a
command uses it; any local ``save_pretrained`` directory or hub id works as ``--model`` too.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON lines, not a table")


def run(args: argparse.Namespace) -> int:
    from srjudge.models import DEFAULT_MODEL, list_models  # imports torch: only when run

    infos = list_models()
    if args.json:
        for info in infos:
            print(json.dumps({**asdict(info), "default": info.alias == DEFAULT_MODEL}))
        return 0
    rows = [("alias", "present", "path", "description")]
    for info in infos:
        alias = info.alias + (" (default)" if info.alias == DEFAULT_MODEL else "")
        rows.append((alias, "yes" if info.present else "no", info.path, info.description))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3])
    print("\nAliases are built on first use; any save_pretrained directory or hub id works too.")
    return 0
