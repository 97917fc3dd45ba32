"""The package layout holds: imports only run down the layers, and files stay short.

Layers, lowest first (``docs/DESIGN.md`` has the table)::

    base (records, resume, models, errors, paths, the package itself) -> data -> judging -> training
    -> evaluation -> loop -> commands -> cli

A module may import from its own layer or any layer below it, never above, and that includes
imports inside functions (every ``import`` statement in the file is checked, parsed with
``ast``, nothing is imported). A file over ``MAX_LINES`` lines fails unless it is in
``ALLOWED_LONG`` with the reason it stays whole.

    pytest tests/test_layout.py
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "srjudge"

# top-level name under srjudge -> layer; a new subpackage must be placed here
LAYERS: dict[str, int] = {
    "__init__": 0,
    "records": 0,
    "resume": 0,
    "models": 0,
    "errors": 0,
    "paths": 0,
    "data": 1,
    "judging": 2,
    "training": 3,
    "evaluation": 4,
    "annotation": 4,  # the human study: reads evaluation outputs, serves a page
    "serving": 4,  # srjudge serve: the Judge API behind HTTP
    "client": 0,  # JudgeClient: HTTP only, imports no other srjudge module
    "loop": 5,
    "commands": 6,
    "cli": 7,
}
MAX_LINES = 500
ALLOWED_LONG: dict[str, str] = {
    "srjudge/training/curate.py": "the pure strategy table and its dispatch, kept whole as the "
    "reference for pure, table-tested modules; a few lines over",
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(dotted: str) -> int:
    """Layer of a module ``srjudge.x.y``; ``srjudge`` alone is the package itself."""
    parts = dotted.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYERS:
        raise AssertionError(f"srjudge.{top} is in no layer: add it to LAYERS in {__file__}")
    return LAYERS[top]


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, srjudge module) for every import of srjudge code in ``tree``, at any depth.

    ``from srjudge import data`` names the module ``srjudge.data``; relative imports are
    resolved against ``package``.

    >>> tree = ast.parse("def f():\\n    from srjudge import data, __version__")
    >>> imported_modules(tree, "srjudge.loop")
    [(2, 'srjudge.data'), (2, 'srjudge')]
    """
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "srjudge"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "srjudge":
                continue
            if base == "srjudge":
                for a in node.names:
                    sub = PACKAGE / a.name
                    is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                    out.append((node.lineno, f"srjudge.{a.name}" if is_module else "srjudge"))
            else:
                out.append((node.lineno, base))
    return out


def upward_imports() -> list[str]:
    problems = []
    for path in _modules():
        dotted = _dotted(path)
        package = dotted if path.name == "__init__.py" else dotted.rsplit(".", 1)[0]
        here = _layer(dotted)
        for line, target in imported_modules(ast.parse(path.read_text()), package):
            if _layer(target) > here:
                problems.append(
                    f"{path.relative_to(SRC)}:{line}: imports {target} (layer {_layer(target)}) "
                    f"from layer {here}"
                )
    return problems


def test_every_module_is_in_a_layer():
    for path in _modules():
        _layer(_dotted(path))


def test_imports_only_run_down_the_layers():
    problems = upward_imports()
    assert not problems, "imports that run back up:\n" + "\n".join(problems)


def test_no_file_over_the_line_limit():
    long = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    unexplained = {p: n for p, n in long.items() if p not in ALLOWED_LONG}
    assert not unexplained, f"files over {MAX_LINES} lines: {unexplained}"
    stale = [p for p in ALLOWED_LONG if p not in long]
    assert not stale, f"allow-listed but no longer long (remove them): {stale}"


@pytest.mark.parametrize(
    "source, package, expected_layer",
    [
        ("from srjudge.loop.run import run", "srjudge.judging", 5),
        ("def f():\n    from srjudge import evaluation", "srjudge.data", 4),
        ("import srjudge.commands.judge", "srjudge", 6),
        ("from ..training import curate", "srjudge.judging", 3),
        ("from srjudge import __version__", "srjudge.loop", 0),
    ],
)
def test_the_checker_sees_every_form_of_import(source, package, expected_layer):
    ((_, target),) = imported_modules(ast.parse(source), package)
    assert _layer(target) == expected_layer


def test_the_checker_flags_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "srjudge"
    (fake / "data").mkdir(parents=True)
    (fake / "loop").mkdir()
    (fake / "data" / "bad.py").write_text("def f():\n    from srjudge.loop import run\n")
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "SRC", tmp_path)
    monkeypatch.setattr(module, "PACKAGE", fake)
    assert upward_imports() == [
        "srjudge/data/bad.py:2: imports srjudge.loop (layer 5) from layer 1"
    ]


def test_help_names_code_that_exists(capsys):
    from srjudge import cli

    for verb, (module, prefix, _, where) in cli.COMMANDS.items():
        assert (PACKAGE / where).exists(), (verb, where)
        commands = importlib.import_module(f"srjudge.commands.{module}")
        assert callable(getattr(commands, f"{prefix}run")), verb
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(where in out for *_, where in cli.COMMANDS.values())
