"""The study database: SQLite (stdlib ``sqlite3``) in WAL mode, one transaction per write.

Tables::

    meta(key, value)            JSON values: labels of A and B, input paths, seed, counts, ...
    items(id, uid, position, key, payload, rationale_1, rationale_2, verdict_1, verdict_2,
          first)                first = 'a' | 'b': whose rationale is "Rationale 1"; server only
    annotators(id, name, token_sha256, origin, created_at)
                                only a token's sha256 is kept; origin 'web' or 'label-studio'
    labels(annotator_id, item_id, choice, reasons, comment, source, created_at, updated_at,
           revision)            one row per (annotator, item); choice '1' | '2' | 'tie_good' |
                                'tie_poor' (sides as shown), reasons a JSON list of REASONS keys
    label_history(...)          every write of a label, appended in the same transaction

Each write runs in ``BEGIN IMMEDIATE ... COMMIT`` with ``synchronous=FULL``, so a label whose
request was answered survives the server being killed, and concurrent writers queue on the
lock (``busy_timeout``) instead of failing. A study file is created whole (written to a
temporary file, then renamed) and never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
CHOICES: dict[str, str] = {
    "1": "Rationale 1 is better",
    "2": "Rationale 2 is better",
    "tie_good": "Tie: both good",
    "tie_poor": "Tie: both poor",
}
"""Label choices, as stored (sides as shown to the annotator), and their wording."""
REASONS: dict[str, str] = {
    "accurate": "More accurate about the response",
    "specific": "More specific",
    "rubric": "Follows the rubric more closely",
    "grounded": "Fewer invented facts",
    "clear": "Clearer",
}
"""Reasons an annotator may tick, keyed as stored."""
MAX_COMMENT = 2000
_NAME = re.compile(r"[\w .@+:-]{1,64}")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,
  position INTEGER NOT NULL UNIQUE,
  key TEXT NOT NULL UNIQUE,
  payload TEXT NOT NULL,
  rationale_1 TEXT NOT NULL,
  rationale_2 TEXT NOT NULL,
  verdict_1 INTEGER NOT NULL,
  verdict_2 INTEGER NOT NULL,
  first TEXT NOT NULL CHECK (first IN ('a', 'b'))
);
CREATE TABLE annotators (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  token_sha256 TEXT UNIQUE,
  origin TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE labels (
  annotator_id INTEGER NOT NULL REFERENCES annotators(id),
  item_id INTEGER NOT NULL REFERENCES items(id),
  choice TEXT NOT NULL CHECK (choice IN ('1', '2', 'tie_good', 'tie_poor')),
  reasons TEXT NOT NULL,
  comment TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  revision INTEGER NOT NULL,
  PRIMARY KEY (annotator_id, item_id)
);
CREATE TABLE label_history (
  id INTEGER PRIMARY KEY,
  annotator_id INTEGER NOT NULL,
  item_id INTEGER NOT NULL,
  choice TEXT NOT NULL,
  reasons TEXT NOT NULL,
  comment TEXT NOT NULL,
  source TEXT NOT NULL,
  at TEXT NOT NULL
);
"""


class StudyError(ValueError):
    """Not a study, a bad annotator name, an invalid label: the message says which."""


@dataclass(frozen=True)
class NewItem:
    uid: str
    position: int
    key: str
    payload: dict[str, Any]
    rationale_1: str
    rationale_2: str
    verdict_1: int
    verdict_2: int
    first: str


@dataclass(frozen=True)
class ShownItem:
    """What the page may show of an item: no key, no side assignment."""

    id: int
    position: int
    payload: dict[str, Any]
    rationale_1: str
    rationale_2: str
    verdict_1: int
    verdict_2: int


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str


@dataclass(frozen=True)
class Label:
    choice: str
    reasons: tuple[str, ...]
    comment: str


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------
# connections and transactions


def _connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def connect(path: str | Path) -> sqlite3.Connection:
    """Open an existing study (never creates one)."""
    if not Path(path).is_file():
        raise StudyError(f"{path}: study not found (srjudge annotate create makes one)")
    try:
        conn = _connect(path)
    except sqlite3.DatabaseError:
        raise StudyError(f"{path}: not a srjudge study database") from None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError:
        conn.close()
        raise StudyError(f"{path}: not a srjudge study database") from None
    if row is None or json.loads(row[0]) != SCHEMA_VERSION:
        conn.close()
        raise StudyError(f"{path}: study schema {row and row[0]}, expected {SCHEMA_VERSION}")
    return conn


@contextlib.contextmanager
def opened(path: str | Path) -> Iterator[sqlite3.Connection]:
    conn = connect(path)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# ---------------------------------------------------------------------------------------
# creating a study


def create(path: str | Path, meta: dict[str, Any], items: Sequence[NewItem]) -> None:
    """Write a new study file atomically; refuses an existing path."""
    final = Path(path)
    if final.exists():
        raise StudyError(f"{final} already exists; a study is never overwritten")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
    conn = _connect(tmp)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)  # a temporary file until the rename below
        with transaction(conn):
            rows = {"schema": SCHEMA_VERSION, "created_at": now(), **meta}
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows.items()]
            )
            conn.executemany(
                "INSERT INTO items (uid, position, key, payload, rationale_1, rationale_2, "
                "verdict_1, verdict_2, first) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.uid,
                        i.position,
                        i.key,
                        json.dumps(i.payload, ensure_ascii=False),
                        i.rationale_1,
                        i.rationale_2,
                        i.verdict_1,
                        i.verdict_2,
                        i.first,
                    )
                    for i in items
                ],
            )
        conn.close()
        os.replace(tmp, final)
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}


# ---------------------------------------------------------------------------------------
# annotators


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise StudyError(
            f"annotator name {name!r}: 1-64 letters, digits, spaces or . @ + : - _ expected"
        )
    return name


def add_annotator(conn: sqlite3.Connection, name: str, *, new_token: bool = False) -> str:
    """Register ``name`` (or, with ``new_token``, replace its token); returns the token.

    Only the token's sha256 is stored: the token itself exists once, in the returned URL.
    """
    check_name(name)
    token = secrets.token_urlsafe(32)
    with transaction(conn):
        row = conn.execute("SELECT id, origin FROM annotators WHERE name = ?", (name,)).fetchone()
        if row and not new_token:
            raise StudyError(f"annotator {name!r} exists; --new-token replaces the old link")
        if row:
            conn.execute(
                "UPDATE annotators SET token_sha256 = ? WHERE id = ?", (token_hash(token), row[0])
            )
        else:
            conn.execute(
                "INSERT INTO annotators (name, token_sha256, origin, created_at) "
                "VALUES (?, ?, 'web', ?)",
                (name, token_hash(token), now()),
            )
    return token


def annotator_for_token(conn: sqlite3.Connection, token: str) -> Annotator | None:
    if not token or len(token) > 200:
        return None
    row = conn.execute(
        "SELECT id, name FROM annotators WHERE token_sha256 = ?", (token_hash(token),)
    ).fetchone()
    return Annotator(*row) if row else None


def annotator_id(conn: sqlite3.Connection, name: str, origin: str) -> int:
    """The id of annotator ``name``, created (without a token) when new; inside a transaction."""
    row = conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
    if row:
        return int(row[0])
    cur = conn.execute(
        "INSERT INTO annotators (name, token_sha256, origin, created_at) VALUES (?, NULL, ?, ?)",
        (check_name(name), origin, now()),
    )
    return int(cur.lastrowid or 0)


def annotators(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """(name, origin, labels) of every annotator, by name."""
    return conn.execute(
        "SELECT a.name, a.origin, COUNT(l.item_id) FROM annotators a "
        "LEFT JOIN labels l ON l.annotator_id = a.id GROUP BY a.id ORDER BY a.name"
    ).fetchall()


# ---------------------------------------------------------------------------------------
# items and labels


def item_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])


def shown_item(conn: sqlite3.Connection, position: int) -> ShownItem | None:
    row = conn.execute(
        "SELECT id, position, payload, rationale_1, rationale_2, verdict_1, verdict_2 "
        "FROM items WHERE position = ?",
        (position,),
    ).fetchone()
    if row is None:
        return None
    return ShownItem(row[0], row[1], json.loads(row[2]), *row[3:])


def item_ids_by_uid(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT uid, id FROM items"))


def label_of(conn: sqlite3.Connection, annotator: int, item: int) -> Label | None:
    row = conn.execute(
        "SELECT choice, reasons, comment FROM labels WHERE annotator_id = ? AND item_id = ?",
        (annotator, item),
    ).fetchone()
    return Label(row[0], tuple(json.loads(row[1])), row[2]) if row else None


def labelled_positions(conn: sqlite3.Connection, annotator: int) -> set[int]:
    rows = conn.execute(
        "SELECT i.position FROM labels l JOIN items i ON i.id = l.item_id WHERE l.annotator_id = ?",
        (annotator,),
    )
    return {r[0] for r in rows}


def check_label(choice: str, reasons: Sequence[str], comment: str) -> Label:
    """A valid ``Label`` or ``StudyError`` saying what is wrong."""
    if choice not in CHOICES:
        raise StudyError(f"choice {choice!r}: expected one of {', '.join(CHOICES)}")
    unknown = [r for r in reasons if r not in REASONS]
    if unknown:
        raise StudyError(f"reasons: unknown {', '.join(map(repr, unknown))}")
    if len(set(reasons)) != len(reasons):
        raise StudyError("reasons: a reason is given twice")
    if len(comment) > MAX_COMMENT:
        raise StudyError(f"comment: longer than {MAX_COMMENT} characters")
    ordered = tuple(r for r in REASONS if r in reasons)
    return Label(choice, ordered, comment.strip())


def write_label(
    conn: sqlite3.Connection, annotator: int, item: int, label: Label, source: str
) -> None:
    """Insert or replace one label and append it to the history; call inside a transaction."""
    at = now()
    reasons = json.dumps(list(label.reasons))
    conn.execute(
        "INSERT INTO labels (annotator_id, item_id, choice, reasons, comment, source, "
        "created_at, updated_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
        "ON CONFLICT (annotator_id, item_id) DO UPDATE SET choice = excluded.choice, "
        "reasons = excluded.reasons, comment = excluded.comment, source = excluded.source, "
        "updated_at = excluded.updated_at, revision = labels.revision + 1",
        (annotator, item, label.choice, reasons, label.comment, source, at, at),
    )
    conn.execute(
        "INSERT INTO label_history (annotator_id, item_id, choice, reasons, comment, source, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (annotator, item, label.choice, reasons, label.comment, source, at),
    )


def save_label(conn: sqlite3.Connection, annotator: int, item: int, label: Label) -> None:
    """One web label, in its own transaction (committed before the request is answered)."""
    with transaction(conn):
        write_label(conn, annotator, item, label, "web")


@dataclass(frozen=True)
class LabelRow:
    """A label with everything a report or export needs (side assignment included)."""

    annotator: str
    item_uid: str
    item_key: str
    position: int
    first: str
    choice: str
    reasons: tuple[str, ...]
    comment: str
    source: str
    updated_at: str
    revision: int

    @property
    def preferred(self) -> str:
        """'a', 'b' or 'tie': the choice mapped back to the models."""
        if self.choice.startswith("tie"):
            return "tie"
        second = "b" if self.first == "a" else "a"
        return self.first if self.choice == "1" else second


def all_labels(conn: sqlite3.Connection) -> list[LabelRow]:
    rows = conn.execute(
        "SELECT a.name, i.uid, i.key, i.position, i.first, l.choice, l.reasons, l.comment, "
        "l.source, l.updated_at, l.revision FROM labels l "
        "JOIN annotators a ON a.id = l.annotator_id JOIN items i ON i.id = l.item_id "
        "ORDER BY a.name, i.position"
    ).fetchall()
    return [LabelRow(*r[:6], tuple(json.loads(r[6])), *r[7:]) for r in rows]


def all_items(conn: sqlite3.Connection) -> list[tuple[str, str, int, dict[str, Any], str, str]]:
    """(uid, key, position, payload, rationale_1, rationale_2) in study order."""
    rows = conn.execute(
        "SELECT uid, key, position, payload, rationale_1, rationale_2, verdict_1, verdict_2 "
        "FROM items ORDER BY position"
    ).fetchall()
    return [
        (r[0], r[1], r[2], {**json.loads(r[3]), "verdicts": [r[6], r[7]]}, r[4], r[5]) for r in rows
    ]
