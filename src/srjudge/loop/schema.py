"""Nested dataclasses from parsed YAML, with every bad setting reported at once.

    cfg = build(RunConfig, raw)      # or ConfigError listing one line per bad setting

Each value is checked against its field's type hint (``int``, ``float``, ``bool``, ``str``,
``X | None``, ``list[X]``, ``Literal[...]``, a nested dataclass): a boolean is not a number
(``seed: true``), a number is finite, an unknown key names the closest known one. A node
whose values are all well typed is then constructed, so its ``__post_init__`` checks run;
a ``settings.SettingsError`` there contributes one line per bad field. A node with a bad
value is not constructed: its class's ``field_problems`` (checks of single fields) run on the
good values instead, and contradictions between fields are not reported, since they may just
follow from the bad value.
Paths are dotted as in command-line overrides: ``iterations.0.sample.n``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from typing import Any, Literal, Union

from srjudge.training.settings import SettingsError


class ConfigError(ValueError):
    """A config that cannot run: ``problems`` holds one line per bad setting."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = head + self.problems[0]
        else:
            lines = "\n".join(f"  {p}" for p in self.problems)
            text = f"{head}{len(self.problems)} problems:\n{lines}"
        super().__init__(text)


_BAD = object()
"""A value that failed its check (its problem is already recorded)."""


def show(value: Any) -> str:
    """A value as the YAML author wrote it: ``true``, ``null``, ``'abc'``, ``a mapping``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value) if isinstance(value, bool | None) else str(value)


def join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def describe(tp: Any) -> str:
    """``int`` -> "an integer", ``list[str]`` -> "a list of text", ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe(a) for a in args)
    if origin is list:
        return f"a list of {describe(args[0])}"
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if dataclasses.is_dataclass(tp):
        return "a mapping of settings"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _scalar(tp: Any, value: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    return tp is Any


def _literal(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    choices = typing.get_args(tp)
    if any(type(value) is type(c) and value == c for c in choices):
        return value
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    problems.append(
        f"{path}: must be one of {', '.join(map(str, choices))}, got {show(value)}{hint}"
    )
    return _BAD


def _value(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    """``value`` checked (and, for dataclasses, built) against ``tp``; ``_BAD`` on failure."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _node(tp, value, path, problems)
    if origin in (Union, types.UnionType):
        return _union(tp, value, path, problems)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected {describe(tp)}, got {show(value)}")
            return _BAD
        items = [_value(typing.get_args(tp)[0], v, join(path, i), problems)
                 for i, v in enumerate(value)]  # fmt: skip
        return _BAD if any(item is _BAD for item in items) else items
    if origin is Literal:
        return _literal(tp, value, path, problems)
    if origin is dict:  # a free mapping (engine options): text keys, any YAML values
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            problems.append(f"{path}: expected a mapping, got {show(value)}")
            return _BAD
        return value
    if _scalar(tp, value):
        return value
    finite = " (finite)" if tp is float and isinstance(value, float) else ""
    problems.append(f"{path}: expected {describe(tp)}{finite}, got {show(value)}")
    return _BAD


def _union(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    options = typing.get_args(tp)
    if value is None and type(None) in options:
        return None
    tried: list[list[str]] = []
    for option in (o for o in options if o is not type(None)):
        found: list[str] = []
        out = _value(option, value, path, found)
        if not found:
            return out
        tried.append(found)
    # a nested dataclass or a Literal explains itself better than "expected X or null"
    specific = [t for t in tried if not t[0].startswith(f"{path}: expected ")]
    problems.extend(specific[0] if specific else [f"{path}: expected {describe(tp)}, got "
                                                  f"{show(value)}"])  # fmt: skip
    return _BAD


def _node(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``; every problem goes to ``problems``."""
    if not isinstance(raw, dict):
        problems.append(f"{path or 'config'}: expected a mapping of settings, got {show(raw)}")
        return _BAD
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    before = len(problems)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{join(path, close[0])}'?" if close else ""
            problems.append(f"{join(path, key)}: unknown setting{hint}")
            continue
        out = _value(hints[key], value, join(path, key), problems)
        if out is not _BAD:
            kwargs[key] = out
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in raw:
            problems.append(f"{join(path, name)}: missing (required)")
    clean = len(problems) == before
    return _construct(cls, kwargs, path, problems, clean)


def _line(path: str, field: str | None, message: str) -> str:
    where = join(path, field) if field else path
    return f"{where}: {message}" if where else message


def _construct(cls: type, kwargs: dict, path: str, problems: list[str], clean: bool) -> Any:
    """``cls(**kwargs)`` with its ``__post_init__`` problems recorded; for a node that already
    has problems (not ``clean``) only the field checks of the values given (``_field_checks``):
    a contradiction between fields may just follow from a value that was dropped."""
    if not clean:
        problems.extend(_field_checks(cls, kwargs, path))
        return _BAD
    try:
        return cls(**kwargs)
    except SettingsError as e:
        problems.extend(_line(path, field, message) for field, message in e.problems)
    except (ValueError, TypeError) as e:
        problems.append(_line(path, None, str(e)))
    return _BAD


def _field_checks(cls: type, kwargs: dict, path: str) -> list[str]:
    """The class's ``field_problems`` (a method that reads only the object's own fields) run on
    a namespace of the well-typed values over the defaults, for the fields given."""
    check = getattr(cls, "field_problems", None)
    if check is None:
        return []
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    try:
        found = check(types.SimpleNamespace(**{**values, **kwargs}))
    except (AttributeError, TypeError):  # a check of a required field that is missing or bad
        return []
    return [_line(path, f, m) for f, m in found if f and f.split(".")[0] in kwargs]


def build(cls: type, raw: Any, source: str | None = None) -> Any:
    """``cls`` built from ``raw``, or ``ConfigError`` with every problem found."""
    problems: list[str] = []
    built = _node(cls, raw, "", problems)
    if problems or built is _BAD:
        raise ConfigError(problems or ["config: invalid"], source)
    return built
