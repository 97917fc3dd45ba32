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
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no lock, everything else works
    fcntl = None  # type: ignore[assignment]


class ResumableJSONL:
    """Append-only JSONL keyed by ``record[key]``; see the module docstring."""

    def __init__(self, path: str | Path, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.done: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 -- closed by close()/__exit__
        try:
            self._lock()
            self._recover()
        except BaseException:
            self._file.close()
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"{self.path} is being written by another process; wait for it or kill it"
            ) from None

    def _recover(self) -> None:
        """Truncate a torn last line, then read the keys of the complete lines."""
        self._file.seek(0)
        data = self._file.read()
        complete = data.rfind(b"\n") + 1  # bytes up to and including the last newline
        if complete < len(data):
            warnings.warn(
                f"{self.path}: dropping a torn last line ({len(data) - complete} bytes, "
                "an interrupted write); its record will be redone",
                stacklevel=3,
            )
            self._file.truncate(complete)
            self._file.flush()
            os.fsync(self._file.fileno())
        for lineno, line in enumerate(data[:complete].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self.done.add(str(record[self.key]))
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
                # A complete line cannot come from an interrupted append: refuse to guess.
                raise ValueError(
                    f"{self.path}:{lineno}: not a JSON object with key {self.key!r} ({e}); "
                    "fix or remove the line, then rerun"
                ) from e

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
