"""Command-line options declared once, readable without Typer.

A command declares an option as ``Annotated[type, Option("--name", help=...)]`` and a
positional argument as ``Annotated[type, Argument(help=...)]``: the same arguments
``typer.Option``/``typer.Argument`` take. When the command is registered, Typer gets
exactly those (:func:`graphkit.cli._typer_internals.for_typer`), so ``--help`` and
parsing are Typer's own; :mod:`graphkit.cli._direct` reads the same declarations
(:func:`parameters`) to run a plain command line without importing Typer at all.
Declarations made with ``typer.Option`` directly keep working: such a command is
simply never run directly.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "CONVERTERS",
    "EXTRA_PARAMS",
    "REPLACED_PARAM",
    "REQUIRED",
    "Argument",
    "ForceOpt",
    "Option",
    "Param",
    "parameters",
]

# Set on a wrapper that adds keyword parameters of its own to the function it wraps
# (graphkit.cli._connection.with_connection_flags): {name: annotation}.
EXTRA_PARAMS = "graphkit_extra_params"
# Replaced by the wrapper: the wrapped function's parameter that receives them.
REPLACED_PARAM = "graphkit_replaced_param"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a parameter without a default


class Option:
    """``typer.Option(*decls, **settings)``, declared without importing Typer."""

    __slots__ = ("decls", "settings")
    typer_name = "Option"

    def __init__(self, *decls: str, **settings: Any) -> None:
        self.decls = decls
        self.settings = settings


class Argument(Option):
    """``typer.Argument(**settings)``, declared without importing Typer."""

    __slots__ = ()
    typer_name = "Argument"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)


# Shared by the commands that write a file.
ForceOpt = typing.Annotated[bool, Option("--force", help="Replace an existing output file.")]


class Param:
    """One parameter of a command: its name, type, declaration and default."""

    __slots__ = ("annotation", "declaration", "default", "name", "typ")

    def __init__(self, name: str, annotation: Any, default: Any) -> None:
        self.name = name
        self.annotation = annotation  # as written: Annotated[type, declaration]
        self.default = default
        self.typ = annotation
        self.declaration: Any = None
        if typing.get_origin(annotation) is typing.Annotated:
            self.typ, *extras = typing.get_args(annotation)
            self.declaration = next((e for e in extras if isinstance(e, Option)), None)


def parameters(func: Callable[..., Any]) -> list[Param]:
    """``func``'s parameters in order, with the annotations evaluated (as Typer sees
    them), read without :mod:`inspect` (whose import costs more than the rest)."""
    extra: dict[str, Any] | None = getattr(func, EXTRA_PARAMS, None)
    target: Any = func.__wrapped__ if extra is not None else func  # type: ignore[attr-defined]
    replaced = getattr(func, REPLACED_PARAM, None)
    hints = typing.get_type_hints(target, include_extras=True)
    code: types.CodeType = target.__code__
    positional = code.co_varnames[: code.co_argcount]
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    defaults: dict[str, Any] = {}
    if target.__defaults__:
        positional_defaults = positional[-len(target.__defaults__) :]
        defaults.update(zip(positional_defaults, target.__defaults__, strict=True))
    defaults.update(target.__kwdefaults__ or {})
    params = [
        Param(name, hints.get(name, Any), defaults.get(name, REQUIRED))
        for name in names
        if name != replaced
    ]
    params += [Param(name, hint, None) for name, hint in (extra or {}).items()]
    return params


# ------------------------------------------------------------ plain values
#
# What a value on the command line becomes, for the plain types graphkit's options use
# (Typer's lean conversion, graphkit.cli._typer_internals.LeanParams, and the direct
# path both use these).


def convert_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a valid integer.") from None


def convert_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a valid number.") from None


def convert_path(value: Any) -> Path:
    return value if isinstance(value, Path) else Path(os.fspath(value))


def convert_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def convert_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{value!r} is not a valid boolean.")


CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    str: convert_str,
    int: convert_int,
    float: convert_float,
    bool: convert_bool,
    Path: convert_path,
}
