"""Guards on the files a verb reads and writes, checked before anything is touched.

    require_file("x.jsonl", "--input")          # a regular file: not missing, a folder or a FIFO
    refuse_same_paths({"--input": "x.jsonl"}, {"--output": "y.jsonl"})
    refuse_foreign_file("y.jsonl", "--out", "a pairs file", looks_like_pairs)
    refuse_foreign_dir("ev", "--out", "an evaluation folder", lambda d: (d / "x.json").is_file())

Each raises ``UserError`` naming the flag and the path. A verb calls them first, before it
loads a model or writes a byte, so a refused command leaves every file as it was. An output
that exists must look like what the verb writes (``refuse_foreign_*``): srjudge overwrites or
resumes its own files, never a file it did not write.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from srjudge.errors import UserError

PathLike = str | os.PathLike[str]


def _kind(path: Path) -> str:
    """``"a folder"``, ``"a FIFO"``, ... for a path that exists and is not a regular file."""
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or other special file"


def require_file(path: PathLike, label: str = "input") -> Path:
    """``path`` as a ``Path`` when it is an existing regular file (symlinks followed)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{label} {path}: no such file")
    if not p.is_file():
        raise UserError(f"{label} {path}: is {_kind(p)}, not a regular file")
    return p


def require_dir(path: PathLike, label: str = "input") -> Path:
    """``path`` as a ``Path`` when it is an existing folder."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{label} {path}: no such folder")
    if not p.is_dir():
        raise UserError(f"{label} {path}: not a folder")
    return p


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file (through links, ``..`` and hard links too)."""
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    return pa.resolve() == pb.resolve()


def refuse_same_paths(inputs: Mapping[str, PathLike], outputs: Mapping[str, PathLike]) -> None:
    """Refuse an output that is an input, or two outputs that are one file."""
    outs = list(outputs.items())
    for i, (out_label, out) in enumerate(outs):
        for in_label, inp in inputs.items():
            if same_file(out, inp):
                raise UserError(
                    f"{out_label} {out} is the same file as {in_label} {inp}; "
                    "writing it would destroy the input. Choose another output path"
                )
        for other_label, other in outs[i + 1 :]:
            if same_file(out, other):
                raise UserError(
                    f"{out_label} {out} and {other_label} {other} are the same file; "
                    "one would overwrite the other. Give them different paths"
                )


def refuse_special(path: PathLike, label: str) -> None:
    """Refuse an output path that exists and is not a regular file (a folder, a FIFO...)."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise UserError(f"{label} {path}: is {_kind(p)}; expected a file path")


def refuse_foreign_file(
    path: PathLike, label: str, what: str, is_ours: Callable[[Path], bool]
) -> None:
    """Refuse to overwrite an existing, non-empty file that ``is_ours`` does not recognise."""
    p = Path(path)
    refuse_special(p, label)
    if p.is_file() and p.stat().st_size > 0 and not is_ours(p):
        raise UserError(
            f"{label} {path} exists and is not {what}; refusing to overwrite it. "
            "Choose another path, or remove the file yourself"
        )


def refuse_foreign_dir(
    path: PathLike, label: str, what: str, marker: Callable[[Path], bool]
) -> None:
    """Refuse an output folder that exists, is not empty, and ``marker`` does not recognise."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{label} {path}: exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not marker(p):
        raise UserError(
            f"{label} {path} is a folder that is not {what} and is not empty; refusing to "
            "write into it. Choose a new or empty folder"
        )


def jsonl_objects_match(path: Path, predicate: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether every non-blank line of ``path`` is a JSON object satisfying ``predicate``."""
    try:
        with open(path, "rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                obj = json.loads(raw)
                if not isinstance(obj, dict) or not predicate(obj):
                    return False
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON, not UTF-8
        return False
    return True


def json_object_has(path: Path, keys: Iterable[str]) -> bool:
    """Whether ``path`` holds one JSON object with all of ``keys`` (a summary, a settings file)."""
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not JSON
        return False
    return isinstance(obj, dict) and all(k in obj for k in keys)


def has_keys(*keys: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for ``jsonl_objects_match``: the object has all of ``keys``."""
    return lambda obj: all(k in obj for k in keys)


def looks_like(keys: Iterable[str]) -> Callable[[Path], bool]:
    """``is_ours`` for ``refuse_foreign_file``: a JSONL whose objects all have ``keys``."""
    wanted = tuple(keys)
    return lambda path: jsonl_objects_match(path, has_keys(*wanted))
