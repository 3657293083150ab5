"""Shared pieces of the command line: state, consoles, passphrases, error reporting."""

from __future__ import annotations

import functools
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from graphkit.errors import ExitCode, GraphkitError, InputError

__all__ = [
    "STATE",
    "ForceOpt",
    "PassphraseFileOpt",
    "PromptPassphraseOpt",
    "emit_json",
    "error_line",
    "install_log_handler",
    "read_passphrase",
    "report_exception",
    "say",
    "stderr_line",
    "warn",
]

PASSPHRASE_ENV = "GRAPHKIT_KEY_PASSPHRASE"  # nosec B105  # the name of a variable, not its value


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
