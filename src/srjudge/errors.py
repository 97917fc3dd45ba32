"""``UserError``: a problem with what the user gave (a file, a flag, a record), not a bug.

    raise UserError("x.jsonl: is a directory, expected a file")

The CLI (``srjudge.cli.main``) prints a ``UserError`` as one line, ``srjudge VERB: error: ...``,
and exits 2, with no traceback (``SRJUDGE_DEBUG=1`` shows it). ``RecordError`` (a malformed
record) is one. It subclasses ``ValueError`` so that callers catching bad values keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message says what is wrong and where (file, line, field, flag)."""
