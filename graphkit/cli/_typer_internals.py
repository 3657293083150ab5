"""Where graphkit reaches into Typer's private internals, for start-up speed.

Two speed-ups, each with a fallback to Typer's own (slower, never wrong) path, and
shell completion loaded only when asked for:

- lean parameter conversion (:class:`LeanParams`, :class:`LeanCommand`): Typer 0.2x
  converts every value through pydantic, whose import alone costs ~80 ms;
- a lazy command tree (:func:`run`): only the command named on the command line is
  built;
- shell completion (:func:`run` again): Typer's completion machinery costs start-up
  time on every run when enabled with ``add_completion``; graphkit leaves it off and
  loads it only for ``graphkit --install-completion|--show-completion [SHELL]`` and
  for the shell's own completion requests (``_GRAPHKIT_COMPLETE`` set).

Nothing else in graphkit touches Typer internals. ``tests/test_typer_internals.py``
fails loudly when a Typer release changes what this module relies on (so the
speed-up is never lost silently); pyproject pins typer below the next minor version.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from typer.core import TyperCommand
from typer.models import CommandInfo

from graphkit.cli._options import CONVERTERS as _CONVERTERS
from graphkit.cli._options import REQUIRED, Option, parameters
from graphkit.cli._options import convert_str as _str

__all__ = [
    "COMPLETION_SHELLS",
    "GraphkitTyper",
    "LeanCommand",
    "LeanParams",
    "for_typer",
    "plain_runtime_class",
    "run",
]


# -------------------------------------------------------------- lean coercion
#
# Typer 0.2x converts every non-flag value through a pydantic TypeAdapter: the first
# such parameter costs ~80 ms of imports (pydantic, importlib.metadata...), more than
# `graphkit thumbprint` spends on everything else. Commands built with ``LeanCommand``
# convert the plain types graphkit uses (str, int, float, Path, lists of them, with no
# Typer-side constraints) directly. Anything else, or a Typer without this machinery,
# keeps Typer's own conversion: slower, never wrong.


class LeanParams:
    """Mixin for Typer commands and groups: plain parameter values skip pydantic.

    Covers the parameters from the signature and the implicit ``--help`` flag (whose
    unset value, None, would otherwise build a TypeAdapter on every run).
    """

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            _install_plain_coercion(param)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """(Groups) Sub-commands, however they were declared, get lean conversion too."""
        command = super().get_command(ctx, cmd_name)  # type: ignore[misc]
        if command is not None:
            _make_lean(command, ctx)
        return command


def _make_lean(command: Any, ctx: Any) -> None:
    for param in command.get_params(ctx):
        _install_plain_coercion(param)
    for sub in getattr(command, "commands", {}).values():
        _make_lean(sub, ctx)


class LeanCommand(LeanParams, TyperCommand):
    """A Typer command with lean parameter conversion: ``app.command(cls=LeanCommand)``."""


# ------------------------------------------------- declarations made without Typer


def for_typer(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as Typer must see it: its :mod:`graphkit.cli._options` declarations
    (its own and those a wrapper adds, such as the connection flags) made into
    ``typer.Option``/``typer.Argument`` with the same arguments. ``func`` itself when
    it has none."""
    import inspect

    params = parameters(func)
    if not any(isinstance(p.declaration, Option) for p in params):
        return func

    def annotation(p: Any) -> Any:
        if p.declaration is None:
            return p.annotation
        made = getattr(typer, p.declaration.typer_name)
        return Annotated[p.typ, made(*p.declaration.decls, **p.declaration.settings)]

    signature = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if p.default is REQUIRED else p.default,
            annotation=annotation(p),
        )
        for p in params
    ]

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        return func(**kwargs)

    command.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in signature}
    return command


class GraphkitTyper(typer.Typer):
    """A Typer application whose commands may declare their options with
    :mod:`graphkit.cli._options` (see :func:`for_typer`).

    The conversion waits until Typer builds the command (it reads the registered
    ``CommandInfo.callback``): registering a dozen commands stays cheap, and ``graphkit
    --help`` or one command converts only what it builds.
    """

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        register = super().command(*args, **kwargs)

        def decorator(func: Callable[..., Any]) -> Any:
            register(func)
            info = self.registered_commands[-1]
            raw = info.__dict__.pop("callback")
            info.__class__ = LazyCommandInfo
            info.callback = raw
            return func

        return decorator


class LazyCommandInfo(CommandInfo):
    """A registered command whose callback is converted (:func:`for_typer`) when first
    read, that is when Typer builds the command."""

    raw_callback: Any = None
    converted: Any = None

    @property
    def callback(self) -> Any:
        if self.converted is None and self.raw_callback is not None:
            self.converted = for_typer(self.raw_callback)
        return self.converted

    @callback.setter
    def callback(self, value: Any) -> None:
        self.raw_callback = value
        self.converted = None


def _declared(info: Any) -> Any:
    """A registered command's own function, its declarations unconverted."""
    return getattr(info, "raw_callback", None) or info.callback


def _plain_converter(desc: Any) -> Callable[[Any], Any] | None:
    """The direct converter for a parameter, or None if Typer must handle it."""
    info = desc.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None):
        return None
    if desc.is_file or desc.is_tuple or desc.is_choice:
        return None
    annotation = desc.annotation
    if desc.is_list:
        args = get_args(annotation)
        if len(args) != 1:
            return None
        annotation = args[0]
    convert = _CONVERTERS.get(annotation)
    if convert is None:
        return None
    if annotation in (int, float) and (info.min is not None or info.max is not None):
        return None
    if annotation is Path and (
        info.exists
        or not info.file_okay
        or not info.dir_okay
        or info.writable
        or info.resolve_path
        or info.allow_dash
        or info.path_type is not None
    ):
        return None
    return convert


@functools.cache
def plain_runtime_class() -> Any:
    try:
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
    except ImportError:  # a Typer without pydantic coercion: nothing to replace
        return None

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        convert: Callable[[Any], Any] = _str
        many: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                if self.many:
                    return [self.convert(v) for v in value]
                return self.convert(value)
            except ValueError as exc:
                raise BadParameter(str(exc), ctx=ctx, param=param) from None

    return PlainRuntimeParam


def _install_plain_coercion(param: Any) -> None:
    desc = getattr(param, "type_descriptor", None)
    if desc is None or getattr(param, "_runtime_param", False) is not None:
        return
    convert = _plain_converter(desc)
    runtime = plain_runtime_class()
    if convert is None or runtime is None:
        return
    param._runtime_param = runtime(
        parameter_info=desc.parameter_info,
        annotation=desc.annotation,
        convert=convert,
        many=bool(desc.is_list),
    )


# ------------------------------------------------------------- lazy command tree
#
# Typer builds every command (signature inspection, one option object per parameter)
# before it runs any. With a dozen commands that is most of `graphkit --help`'s own
# time. ``run`` builds only what the invocation needs: the one command named on the
# command line, or, for the root help, listing-only stand-ins that carry each
# command's name and help text. Anything it cannot recognise runs the full tree.


COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
COMPLETION_OPTIONS = ("--install-completion", "--show-completion")


class CompletionError(Exception):
    """The shell cannot be told or is not supported (the root group maps it to exit 2)."""


def complete_var(prog_name: str) -> str:
    """The variable a completion script sets when it asks for completions."""
    return "_{}_COMPLETE".format(prog_name.replace("-", "_").upper())


def completion(action: str, shell: str | None, prog_name: str = "graphkit") -> str:
    """``--show-completion``: the script; ``--install-completion``: install it and say where.

    ``shell`` None: the shell this runs in (Typer detects it with shellingham).
    """
    from typer._completion_classes import completion_init
    from typer._completion_shared import _get_shell_name, get_completion_script, install

    completion_init()
    shell = shell or _get_shell_name()
    if shell not in COMPLETION_SHELLS:
        raise CompletionError(
            f"cannot tell which shell to complete for ({shell or 'not detected'})"
        )
    var = complete_var(prog_name)
    if action == "--show-completion":
        # 'shell' names the shell the script is for (bash, zsh...): nothing is run.
        script = get_completion_script(prog_name=prog_name, complete_var=var, shell=shell)  # nosec B604  # a shell name, not shell=True
        return str(script)
    shell, path = install(shell=shell, prog_name=prog_name, complete_var=var)  # nosec B604  # a shell name
    return f"{shell} completion installed in {path}: it takes effect in a new shell"


def _completion_request(argv: list[str]) -> tuple[str, str | None] | None:
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] not in COMPLETION_OPTIONS:
        return None
    rest = argv[1:]
    if len(rest) > 1:
        raise CompletionError(f"{argv[0]} takes at most one shell name")
    if rest and rest[0] not in COMPLETION_SHELLS:
        raise CompletionError(f"{rest[0]!r} is not a shell graphkit completes")
    return argv[0], (rest[0] if rest else None)


def run(app: typer.Typer, argv: list[str], prog_name: str = "graphkit") -> None:
    """Run ``app`` with ``argv``, building only the part of the command tree used."""
    import sys

    from typer.models import CommandInfo

    request = _completion_request(argv)
    if request is not None:
        sys.stdout.write(completion(*request, prog_name=prog_name).rstrip("\n") + "\n")
        return
    commands = list(app.registered_commands)
    groups = list(app.registered_groups)
    word = _command_word(argv)
    if os.environ.get(complete_var(prog_name)):
        # The shell asks for completions: the whole tree, with Typer's completion classes.
        from typer._completion_classes import completion_init

        completion_init()
        word = ""
    if word == "":
        pass
    elif word is None:  # `graphkit`, `graphkit --help`, `graphkit --version`
        selected = [_listing_stub(info, CommandInfo) for info in commands] + [
            _listing_stub(info, CommandInfo, group=True) for info in groups
        ]
        app.registered_commands, app.registered_groups = selected, []
    else:
        chosen = [info for info in commands if _command_name(info) == word]
        chosen_groups = [info for info in groups if _group_name(info) == word]
        if chosen or chosen_groups:
            app.registered_commands, app.registered_groups = chosen, chosen_groups
    try:
        from typer.main import get_command

        command = get_command(app)
    finally:
        # Restored before anything runs: a command may itself run graphkit commands.
        app.registered_commands, app.registered_groups = commands, groups
    # What ``app(...)`` does, minus Typer's pretty-exception hook (disabled for graphkit).
    command(args=argv, prog_name=prog_name)


def _command_word(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (root options are all flags), or None."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _command_name(info: Any) -> str:
    from typer.main import get_command_name

    return str(info.name or get_command_name(_declared(info).__name__))


def _group_name(info: Any) -> str | None:
    from typer.main import solve_typer_info_defaults

    name = solve_typer_info_defaults(info).name
    return str(name) if name else None


def _listed_only() -> None:
    """Stand-in callback: listing-only commands are never invoked."""


def _listing_stub(info: Any, command_info: Any, *, group: bool = False) -> Any:
    """A parameterless command with the name and help ``info`` would be listed with."""
    import inspect

    from typer.main import solve_typer_info_defaults

    if group:
        solved = solve_typer_info_defaults(info)
        name, text = solved.name, solved.help
    else:
        solved = info
        name = _command_name(info)
        text = info.help if info.help is not None else inspect.getdoc(_declared(info))
    return command_info(
        name=name,
        callback=_listed_only,
        help=text or "",
        short_help=solved.short_help,
        hidden=solved.hidden,
        deprecated=solved.deprecated,
    )
