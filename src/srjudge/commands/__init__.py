"""CLI verbs: each module defines ``add_arguments(parser)`` and ``run(args) -> int`` (with a
prefix when one module serves several verbs). ``srjudge.cli.COMMANDS`` is the table."""
