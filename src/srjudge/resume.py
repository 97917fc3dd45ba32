"""An append-only JSONL file keyed by id, so that a killed run can be rerun and continue.

Each ``append`` writes one complete line, then flushes and fsyncs, so after ``kill -9`` the
file holds every record appended before the kill, plus at most one torn last line (a write
cut short). Opening the file again truncates that torn line away (with a warning) and reads
the keys already written into ``done``; the caller skips those and appends the rest::

    with ResumableJSONL("judgments.jsonl") as out:
        for example in examples:
            if example.id in out.done:
                continue
            out.append({"id": example.id, "verdict": judge(example)})

An advisory lock (``flock``) stops a second process from appending to the same file while
the first runs; the operating system releases it when the holder dies, even by SIGKILL.

Nothing is mixed or destroyed on resume. Every complete line must be a JSON object with the
key, and a torn last line must start like one of ours (``{"id": ``), else the file is not
ours and is refused untouched. Given ``settings``, they are kept in a sidecar
(``<stem>.settings.json``, written before the first record): reopening a file with other
settings, or a non-empty file without its sidecar, is refused with what differs. Given
``fingerprint`` (a field of each record, e.g. the hash of the input it was made from),
``refuse_changed`` refuses records whose input changed under the same key.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from srjudge.errors import UserError
from srjudge.paths import refuse_special

try:
    import fcntl
except ImportError:  # not POSIX: no lock, everything else works
    fcntl = None  # type: ignore[assignment]


class FileBusyError(UserError, RuntimeError):
    """Another process holds the file's lock."""


class ResumableJSONL:
    """Append-only JSONL keyed by ``record[key]``; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        key: str = "id",
        *,
        settings: Mapping[str, Any] | None = None,
        settings_path: str | Path | None = None,
        ignore: Collection[str] = (),
        fingerprint: str | None = None,
    ):
        self.path = Path(path)
        self.key = key
        self.done: set[str] = set()
        self.fingerprints: dict[str, Any] = {}
        self._fingerprint = fingerprint
        self.settings_path = Path(settings_path or self.path.with_suffix(".settings.json"))
        refuse_special(self.path, "output")
        old_settings = _read_settings(self.settings_path) if settings is not None else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 -- closed by close()/__exit__
        try:
            self._lock()
            complete, size = self._read_records()
            if settings is not None:
                self._check_settings(dict(settings), old_settings, size > 0, ignore)
            if complete < size:
                self._truncate(complete, size)
        except BaseException:
            self._file.close()
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileBusyError(
                f"{self.path} is being written by another process; wait for it or kill it"
            ) from None

    def _read_records(self) -> tuple[int, int]:
        """Read the keys of the complete lines; refuse a file that is not ours, untouched.

        Returns (bytes up to the last newline, file size)."""
        self._file.seek(0)
        data = self._file.read()
        complete = data.rfind(b"\n") + 1  # bytes up to and including the last newline
        for lineno, line in enumerate(data[:complete].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self.done.add(str(record[self.key]))
            except (ValueError, KeyError, TypeError, RecursionError) as e:
                # A complete line cannot come from an interrupted append: refuse to guess.
                raise UserError(
                    f"{self.path}:{lineno}: not a JSON object with key {self.key!r} "
                    f"({type(e).__name__}): this file was not written by srjudge, or was "
                    "edited; nothing was changed. Use another output path, or fix the line"
                ) from None
            if self._fingerprint is not None:
                self.fingerprints[str(record[self.key])] = record.get(self._fingerprint)
        tail = data[complete:]
        if tail and not tail.startswith(_record_start(self.key)):
            raise UserError(
                f"{self.path}: its last line is not a record cut short by an interrupted "
                "write: this file was not written by srjudge; nothing was changed. "
                "Use another output path"
            )
        return complete, len(data)

    def _check_settings(
        self,
        settings: dict[str, Any],
        old: dict[str, Any] | None,
        has_records: bool,
        ignore: Collection[str],
    ) -> None:
        """Refuse to resume under other settings; record them before the first append."""
        settings = json.loads(json.dumps(settings, default=str))
        if has_records and old is None:
            raise UserError(
                f"{self.path} holds records but no settings file {self.settings_path.name}, "
                "so srjudge cannot tell which settings made them and resuming could mix "
                f"settings; nothing was changed. Use another output path, or delete {self.path} "
                "to start over"
            )
        if has_records and old is not None:
            diff = settings_diff(old, settings, ignore)
            if diff:
                raise UserError(
                    f"{self.path} was started with other settings ({'; '.join(diff)}); "
                    "resuming would mix them in one file, so nothing was changed. Rerun with "
                    f"the old settings, use another output path, or delete {self.path} and "
                    f"{self.settings_path.name} to start over"
                )
        if old != settings:  # new file, or only ignored keys changed
            _write_settings(self.settings_path, self.path, settings)

    def _truncate(self, complete: int, size: int) -> None:
        warnings.warn(
            f"{self.path}: dropping a torn last line ({size - complete} bytes, "
            "an interrupted write); its record will be redone",
            stacklevel=4,
        )
        self._file.truncate(complete)
        self._file.flush()
        os.fsync(self._file.fileno())

    def refuse_changed(self, current: Mapping[str, Any]) -> None:
        """Refuse when a record's fingerprint differs from ``current[key]`` (same key, other
        input). Keys not in ``current`` are not checked."""
        changed = [k for k in current if k in self.done and self.fingerprints.get(k) != current[k]]
        if changed:
            shown = ", ".join(repr(k) for k in changed[:3]) + (", ..." if len(changed) > 3 else "")
            raise UserError(
                f"{self.path}: {len(changed)} record(s) were made from other input under the "
                f"same {self.key} ({shown}): the input changed since this file was started, and "
                "resuming would mix old and new rows; nothing was changed. Use another output "
                f"path, or delete {self.path} to start over"
            )

    def __contains__(self, key: object) -> bool:
        return str(key) in self.done

    def __len__(self) -> int:
        return len(self.done)

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line, flush and fsync. A key already written is refused."""
        if self.key not in record:
            raise KeyError(f"record has no {self.key!r} field")
        key = str(record[self.key])
        if key in self.done:
            raise ValueError(f"{self.path}: {self.key}={key!r} is already written")
        record = {self.key: record[self.key], **record}  # the key first: see _record_start
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self._file.write(line.encode("utf-8"))  # "a" mode: always at the end
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(key)

    def close(self) -> None:
        self._file.close()  # closing also releases the lock

    def __enter__(self) -> ResumableJSONL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record_start(key: str) -> bytes:
    """How every line ``append`` writes begins: ``{"id": ``."""
    return ("{" + json.dumps(key, ensure_ascii=False) + ": ").encode("utf-8")


def _read_settings(path: Path) -> dict[str, Any] | None:
    """The settings recorded in a sidecar, ``None`` when there is none; a foreign file is
    refused."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_bytes())
        return dict(doc["settings"])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"{path} exists and is not an srjudge settings file ({type(e).__name__}); "
            "nothing was changed. Move it away, or use another output path"
        ) from None


def _write_settings(path: Path, data_path: Path, settings: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    doc = {"file": data_path.name, "settings": settings}
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def settings_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], ignore: Collection[str] = ()
) -> list[str]:
    """``"name: old -> new"`` for each setting that differs (nested keys dotted).

    >>> settings_diff({"n": 1, "p": {"t": 0.0}}, {"n": 2, "p": {"t": 0.0}})
    ['n: 1 -> 2']
    """
    a, b = _flatten(old), _flatten(new)
    skip = tuple(ignore)
    names = [k for k in dict.fromkeys([*a, *b]) if k.split(".")[0] not in skip]
    missing = "(not set)"
    return [
        f"{k}: {_short(a.get(k, missing))} -> {_short(b.get(k, missing))}"
        for k in names
        if a.get(k, missing) != b.get(k, missing)
    ]


def _short(value: Any) -> str:
    text = value if value == "(not set)" else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
