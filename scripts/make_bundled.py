"""Regenerate the data slices bundled in ``src/srjudge/data/bundled/`` from ``../shared/data``.

    python scripts/make_bundled.py [--shared ../shared/data] [--out src/srjudge/data/bundled]

Slices hold the ORIGINAL rows (one JSON object per line, keys and values untouched), so the
loaders in ``srjudge.data`` read them like the full files. Output is byte-for-byte
deterministic: a fixed seed, rows kept in source order, and gzip written with mtime 0 and no
file name. Prints each slice's rows, bytes and sha256 for ``bundled/README.md``.

Not bundled on purpose: Safe-RLHF (CC BY-NC 4.0), Auto-J (no licence) and, unless
``--biggen`` is given, the BiGGen human-eval slice: BiGGen-Bench-Results carries no licence
and the BiGGen-Bench instances are CC BY-SA/ND 4.0, not Apache-2.0 (see bundled/README.md).
``--biggen`` writes that slice for local use only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

SEED = 0
REWARDBENCH_PER_SECTION = 25
BIGGEN_INSTANCES_PER_CAPABILITY = 5  # x 4 response models = 20 rows per capability file
ROOT = Path(__file__).resolve().parent.parent


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_gz(path: Path, text: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def rewardbench_slice(shared: Path) -> list[dict[str, Any]]:
    """``REWARDBENCH_PER_SECTION`` rows drawn per section file, in file order."""
    out = []
    for name in ("Chat", "Chat_Hard", "Safety", "Reasoning"):
        rows = read_jsonl(shared / "reward-bench" / f"{name}.jsonl")
        keep = set(
            random.Random(f"{SEED}:{name}").sample(range(len(rows)), REWARDBENCH_PER_SECTION)
        )
        out += [r for i, r in enumerate(rows) if i in keep]
    return out


def biggen_slice(shared: Path) -> list[dict[str, Any]]:
    """Whole instances (all four responses) drawn per capability file, so questions stay whole."""
    out = []
    for path in sorted((shared / "biggen-bench").glob("human_eval_*.jsonl")):
        rows = read_jsonl(path)
        ids = sorted({r["id"] for r in rows})
        keep = set(
            random.Random(f"{SEED}:{path.name}").sample(ids, BIGGEN_INSTANCES_PER_CAPABILITY)
        )
        out += [r for r in rows if r["id"] in keep]
    return out


def slices(shared: Path, *, biggen: bool) -> dict[str, bytes]:
    """File name -> uncompressed JSONL bytes."""
    vicuna = shared / "vicuna-bench-prometheus" / "vicuna_eval.json"
    return {
        # the source file itself: its decompressed sha256 equals the MANIFEST's
        "mt_bench_raw_data.jsonl.gz": (
            shared / "mt-bench-prometheus" / "mt_bench_raw_data.jsonl"
        ).read_bytes(),
        # a JSON list in the source; written one row per line, rows unchanged
        "vicuna_eval.jsonl.gz": jsonl_bytes(json.loads(vicuna.read_text(encoding="utf-8"))),
        "rewardbench_slice.jsonl.gz": jsonl_bytes(rewardbench_slice(shared)),
    } | ({"biggen_human_eval_slice.jsonl.gz": jsonl_bytes(biggen_slice(shared))} if biggen else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "srjudge" / "data" / "bundled")
    parser.add_argument("--biggen", action="store_true", help="also the BiGGen slice (local use)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in slices(args.shared, biggen=args.biggen).items():
        blob = write_gz(args.out / name, text)
        rows = len(text.splitlines())
        digest = hashlib.sha256(blob).hexdigest()
        print(f"{name}\trows {rows}\tbytes {len(blob)}\tsha256 (gz) {digest}")


if __name__ == "__main__":
    main()
