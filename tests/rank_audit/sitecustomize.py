"""Test helper, not part of srjudge: records the files a training rank other than 0 writes.

Put this folder first on PYTHONPATH and set SRJUDGE_AUDIT_DIR (the folder watched) and
SRJUDGE_AUDIT_LOG (a file prefix outside it). Every process started with ``RANK`` set to
something other than 0 (torchrun's workers) then appends, at exit, one line per write it made
under the watched folder (``open`` for writing, mkdir of a new folder, rename, remove) to
``<SRJUDGE_AUDIT_LOG>.<rank>.<pid>``, through Python's audit hooks (PEP 578).
"""

import atexit
import os
import sys

_WATCH = os.environ.get("SRJUDGE_AUDIT_DIR")
_RANK = os.environ.get("RANK")
_EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree",
           "os.truncate", "os.symlink", "os.link")  # fmt: skip
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _install() -> None:
    watch = os.path.realpath(_WATCH)
    seen: list[str] = []

    def under(path: object) -> str | None:
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str | os.PathLike):
            return None
        real = os.path.realpath(os.fspath(path))
        return real if real == watch or real.startswith(watch + os.sep) else None

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (mode and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE_FLAGS
            real = under(path) if writing else None
            if real and os.path.isdir(real):
                real = None  # opening a folder for writing fails (datasets probes its cache dir)
        elif event in _EVENTS and args:
            real = under(args[0])
            if event == "os.mkdir" and real and os.path.isdir(real):
                real = None  # makedirs(exist_ok=True) of a folder that exists writes nothing
        else:
            return
        if real:
            seen.append(f"{event} {os.path.relpath(real, watch)}")

    def dump() -> None:
        log = f"{os.environ['SRJUDGE_AUDIT_LOG']}.{_RANK}.{os.getpid()}"
        with open(log, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in seen))

    sys.addaudithook(hook)
    atexit.register(dump)


if _WATCH and _RANK not in (None, "0"):
    _install()
