"""The direct path: a plain ``graphkit query ...`` command line, run without Typer.

A warm ``graphkit query`` (token cached) spends more time importing and building Typer
and Click than on everything else it does but the GET. For the commands listed in
:data:`DIRECT`, whose options are all declared with :mod:`graphkit.cli._options`,
:func:`run` parses a command line it fully understands from those same declarations
(the ones Typer builds the command from) and calls the command function itself, with
the values Typer would pass; errors end through the same
:func:`graphkit.cli._report.conclude` as the root group's.

Anything it does not fully understand goes to Typer untouched: ``--help``/``-h``, an
unknown option, ``--`` , a value that does not convert, a repeated single option, an
option glued to its value (``-ojson``), a missing or extra argument, root options
(``--version``), shell completion. So Typer still decides every error message and
every help text; this path only ever runs command lines Typer would run the same way
(tests/test_direct_path.py compares the two on many command lines).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable
from typing import Any

from graphkit.cli._options import CONVERTERS, REQUIRED, Argument, Option, Param, parameters

__all__ = ["DIRECT", "parse", "run"]


def _query() -> Callable[..., Any]:
    from graphkit.cli.query import query

    return query


# Commands run directly when their command line is plain: the warm path.
DIRECT: dict[str, Callable[[], Callable[..., Any]]] = {"query": _query}


def run(argv: list[str]) -> None:
    """Run ``graphkit ARGV`` directly and exit, if it is a plain command line of a
    command in :data:`DIRECT`; otherwise return (Typer runs it)."""
    from graphkit.cli._report import conclude, split_debug

    args, debug = split_debug(argv)
    if not args or args[0] not in DIRECT or os.environ.get("_GRAPHKIT_COMPLETE"):
        return
    command = DIRECT[args[0]]()
    kwargs = parse(parameters(command), args[1:])
    if kwargs is None:
        return

    def call() -> int:
        rv = command(**kwargs)
        return rv if isinstance(rv, int) else 0

    conclude(call, debug=debug)


# Declaration settings that change only the help, never a value: anything else (a
# callback, envvar, min/max, exists...) leaves the command line to Typer.
_PLAIN_SETTINGS = frozenset({"help", "show_default", "metavar", "hidden", "rich_help_panel"})


class _Unsure(Exception):
    """The command line is not one this path understands: Typer runs it."""


def parse(params: list[Param], args: list[str]) -> dict[str, Any] | None:
    """The keyword arguments Typer would call the command with, or None if unsure."""
    try:
        return _parse(params, args)
    except _Unsure:
        return None


def _parse(params: list[Param], args: list[str]) -> dict[str, Any]:
    options: dict[str, Param] = {}
    arguments: list[Param] = []
    for p in params:
        if isinstance(p.declaration, Argument):
            arguments.append(p)
        elif isinstance(p.declaration, Option):
            for decl in p.declaration.decls:
                options[decl] = p
        elif p.default is REQUIRED:
            raise _Unsure  # a parameter Typer fills in some other way
    values: dict[str, Any] = {}
    given: list[str] = []
    words = iter(args)
    for word in words:
        if word.startswith("-") and word != "-":  # "--", "-h", "--help" are no options
            name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
            option = options.get(name)
            if option is None:
                raise _Unsure
            many, typ = _kind(option)
            if typ is bool:
                if eq or option.default is not False or len(option.declaration.decls) != 1:
                    raise _Unsure  # --no-x, --x=value: Typer's
                value: Any = True
            else:
                raw = inline if eq else next(words, None)
                if raw is None:
                    raise _Unsure
                value = _convert(typ, raw)
            if many:
                values.setdefault(option.name, []).append(value)
            elif option.name in values:
                raise _Unsure  # given twice
            else:
                values[option.name] = value
        else:
            given.append(word)
    if len(given) > len(arguments):
        raise _Unsure
    for p, word in zip(arguments, given, strict=False):
        many, typ = _kind(p)
        if many:
            raise _Unsure
        values[p.name] = _convert(typ, word)
    for p in params:
        if p.name not in values:
            if p.default is REQUIRED:
                raise _Unsure
            values[p.name] = p.default
    return values


def _kind(p: Param) -> tuple[bool, Any]:
    """(takes a list, the type of one value) for a parameter this path can convert."""
    if not set(p.declaration.settings) <= _PLAIN_SETTINGS:
        raise _Unsure  # a callback, an envvar, bounds, a path check...: Typer's to apply
    typ = p.typ
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if args and typing.get_origin(typ) in (typing.Union, type(int | None)):
        if len(args) != 1:
            raise _Unsure
        typ = args[0]
    many = typing.get_origin(typ) is list
    if many:
        (typ,) = typing.get_args(typ)
    if typ not in CONVERTERS:
        raise _Unsure
    return many, typ


def _convert(typ: Any, raw: str) -> Any:
    try:
        return CONVERTERS[typ](raw)
    except ValueError:
        raise _Unsure from None
