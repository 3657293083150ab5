"""Shared pieces of the command line: state, consoles, passphrases, error reporting."""

from __future__ import annotations

import functools
import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from typer.core import TyperCommand

from graphkit.errors import ExitCode, GraphkitError, InputError

PASSPHRASE_ENV = "GRAPHKIT_KEY_PASSPHRASE"


@dataclass
class _State:
    debug: bool = False


STATE = _State()


def stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error_line(message: str) -> None:
    stderr_line(f"graphkit: error: {message}")


def warn(message: str) -> None:
    stderr_line(f"graphkit: warning: {message}")


def say(message: str) -> None:
    """Progress and confirmations: stderr, so stdout carries only data."""
    stderr_line(message)


def report_exception(exc: BaseException) -> int:
    """Print ``exc`` as one line and return the exit status it maps to."""
    if isinstance(exc, GraphkitError):
        error_line(str(exc))
        return int(exc.exit_code)
    if _is_usage_error(exc):
        # A value Typer could not convert (e.g. --days abc), raised while the
        # sub-command parses: one line, like every other error, with where to look.
        if getattr(exc, "option_name", None) in ("--passphrase", "--password", "--pass"):
            error_line(
                "a passphrase is never taken as an argument (it would show in `ps`): "
                f"use --passphrase-file FILE, {PASSPHRASE_ENV} or --prompt-passphrase"
            )
            return int(ExitCode.USAGE)
        ctx = getattr(exc, "ctx", None)
        where = f"`{ctx.command_path} --help`" if ctx is not None else "`graphkit --help`"
        message = _one_line(exc.format_message()).rstrip(".")  # type: ignore[attr-defined]
        if message.startswith("Got unexpected extra argument"):
            # Not echoed: typically an unquoted value split at a space, such as
            # -H Authorization: Bearer eyJ..., and the rest may be a secret.
            message = (
                "unexpected extra argument(s), not shown as they may hold a secret "
                "(quote a value that contains spaces)"
            )
        error_line(f"{message}: see {where}")
        return int(ExitCode.USAGE)
    if isinstance(exc, BrokenPipeError):
        return int(ExitCode.ERROR)
    # Unexpected: one line, the type only (its text might hold secrets), and how to see more.
    error_line(
        f"unexpected {type(exc).__name__}; rerun with --debug for the traceback "
        "and report it if it persists"
    )
    return int(ExitCode.ERROR)


def install_log_handler() -> None:
    """Print log records the graphkit way, from now on in this process (idempotent).

    Unconfigured, Python prints any library's WARNING+ records raw, tracebacks
    included: msal logs a token endpoint's non-JSON answer (possibly an error page
    echoing the request) that way. Without --debug only graphkit's own records are
    shown, one line each and without traceback; with --debug every record is, in full.
    Called by commands that authenticate (logging is not imported before that).
    """
    import logging

    root = logging.getLogger()
    handler_class = _log_handler_class()
    if not any(isinstance(h, handler_class) for h in root.handlers):
        root.addHandler(handler_class(logging.WARNING))


@functools.cache
def _log_handler_class() -> Any:
    import logging

    class OneLineHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                if STATE.debug:
                    text = logging.Formatter("%(name)s: %(levelname)s: %(message)s").format(record)
                elif record.name == "graphkit" or record.name.startswith("graphkit."):
                    level = "error" if record.levelno >= logging.ERROR else "warning"
                    text = f"graphkit: {level}: {_one_line(record.getMessage())}"
                else:
                    return  # msal, urllib3...: graphkit reports the failure itself
                stderr_line(text)
            except Exception:
                self.handleError(record)

    return OneLineHandler


def _is_usage_error(exc: BaseException) -> bool:
    """True for click's (or Typer's vendored click's) UsageError and BadParameter."""
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__) and hasattr(
        exc, "format_message"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------- passphrases

PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"Read the passphrase from this file (first line). Or set {PASSPHRASE_ENV}.",
        show_default=False,
    ),
]
PromptPassphraseOpt = Annotated[
    bool,
    typer.Option("--prompt-passphrase", help="Ask for the passphrase (hidden input)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output file.")]


def read_passphrase(
    passphrase_file: Path | None, prompt: bool, *, confirm: bool = False
) -> bytes | None:
    """The passphrase from a file, a hidden prompt, or the environment (in that order).

    Explicit options win over ``GRAPHKIT_KEY_PASSPHRASE``. A passphrase is never taken
    as a plain argument: it would show in ``ps`` and in shell history.

    Args:
        passphrase_file: read the first line of this file.
        prompt: ask on the terminal (hidden); piped input is read line by line.
        confirm: ask twice and refuse a mismatch (when setting a new passphrase).

    Raises:
        InputError: the file is missing or empty, the entries differ, or are empty.
    """
    if passphrase_file is not None and prompt:
        raise InputError(
            "--passphrase-file and --prompt-passphrase both given", "choose one of them"
        )
    if passphrase_file is not None:
        from graphkit.files import read_passphrase_file

        lines = read_passphrase_file(passphrase_file).splitlines()
        if not lines or not lines[0]:
            raise InputError(
                f"passphrase file {passphrase_file} is empty", "put the passphrase on line 1"
            )
        return lines[0]
    if prompt:
        return _prompt_passphrase(confirm).encode()
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode()
    return None


def _prompt_passphrase(confirm: bool) -> str:
    if sys.stdin is None or not sys.stdin.isatty():
        # Piped input (scripts, tests): read lines; getpass would warn and echo.
        if sys.stdin is None:
            raise InputError(
                "--prompt-passphrase needs a terminal", f"use --passphrase-file or {PASSPHRASE_ENV}"
            )
        first = sys.stdin.readline().rstrip("\r\n")
        second = sys.stdin.readline().rstrip("\r\n") if confirm else first
    else:
        first = getpass.getpass("Passphrase: ")
        second = getpass.getpass("Repeat passphrase: ") if confirm else first
    if not first:
        raise InputError("the passphrase is empty", "type a passphrase, or leave out the option")
    if first != second:
        raise InputError("the passphrases do not match", "run the command again")
    return first


def emit_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


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


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a valid integer.") from None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a valid number.") from None


def _path(value: Any) -> Path:
    return value if isinstance(value, Path) else Path(os.fspath(value))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{value!r} is not a valid boolean.")


_CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    str: _str,
    int: _int,
    float: _float,
    bool: _bool,
    Path: _path,
}


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
def _plain_runtime_class() -> Any:
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
    runtime = _plain_runtime_class()
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


def run(app: typer.Typer, argv: list[str], prog_name: str = "graphkit") -> None:
    """Run ``app`` with ``argv``, building only the part of the command tree used."""
    from typer.models import CommandInfo

    commands = list(app.registered_commands)
    groups = list(app.registered_groups)
    word = _command_word(argv)
    if word is None:  # `graphkit`, `graphkit --help`, `graphkit --version`
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

    return str(info.name or get_command_name(info.callback.__name__))


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
        text = info.help if info.help is not None else inspect.getdoc(info.callback)
    return command_info(
        name=name,
        callback=_listed_only,
        help=text or "",
        short_help=solved.short_help,
        hidden=solved.hidden,
        deprecated=solved.deprecated,
    )
