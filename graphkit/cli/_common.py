"""Shared pieces of the command line: state, consoles, passphrases, error reporting."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from graphkit.cli._state import STATE, interrupted
from graphkit.errors import ExitCode, GraphkitError, InputError, UsageError

__all__ = [
    "DATA_FORMATS",
    "STATE",
    "FirstSentenceHelp",
    "ForceOpt",
    "OutputOpt",
    "PassphraseFileOpt",
    "PromptPassphraseOpt",
    "emit",
    "emit_json",
    "error_line",
    "install_log_handler",
    "interrupted",
    "output_format",
    "read_passphrase",
    "report_exception",
    "say",
    "silence_stdout",
    "stderr_line",
    "warn",
]

PASSPHRASE_ENV = "GRAPHKIT_KEY_PASSPHRASE"  # nosec B105  # the name of a variable, not its value


class FirstSentenceHelp:
    """Mixin for command groups: the command list shows each command's whole first
    sentence (Click cuts it at 45 columns, mid-word, with "..."); long ones wrap."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):  # type: ignore[attr-defined]
            command = self.get_command(ctx, name)  # type: ignore[attr-defined]
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class GraphkitSubgroup(FirstSentenceHelp, TyperGroup):
    """A command group (config, emulator) whose command list shows whole sentences."""


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
        if exc.exit_code == ExitCode.INTERRUPTED:  # that line told of the Ctrl-C already
            STATE.interrupted_shown = True
        return int(exc.exit_code)
    if type(exc).__name__ == "NoArgsIsHelpError":
        # `graphkit` or `graphkit config` alone: the help, as asked for implicitly.
        exc.show()  # type: ignore[attr-defined]
        return int(ExitCode.USAGE)
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
        if message in ("No such option: -v", "No such option: -V"):
            message += " (--version prints the version)"
        error_line(f"{message}: see {where}")
        return int(ExitCode.USAGE)
    if isinstance(exc, BrokenPipeError):
        # The reader of stdout went away (`graphkit ... | head -1`): stop quietly, with
        # success, as README "Exit codes" says (a pipeline's own status is the reader's).
        silence_stdout()
        return int(ExitCode.OK)
    # Unexpected: one line, the type only (its text might hold secrets), and how to see more.
    error_line(
        f"unexpected {type(exc).__name__}; rerun with --debug for the traceback "
        "and report it if it persists"
    )
    return int(ExitCode.ERROR)


def silence_stdout() -> None:
    """Point stdout at /dev/null: its reader is gone, and the interpreter's final flush
    of what is still buffered must not fail again (and print) on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


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


PASSPHRASE_TRIES = 3  # a mismatched repeat asks again, as ssh-keygen does


def _prompt_passphrase(confirm: bool) -> str:
    if sys.stdin is None:
        raise InputError(
            "--prompt-passphrase needs a terminal", f"use --passphrase-file or {PASSPHRASE_ENV}"
        )
    if not sys.stdin.isatty():
        # Piped input (scripts, tests): read lines, once (nobody to ask again); getpass
        # would warn and echo.
        first = sys.stdin.readline().rstrip("\r\n")
        second = sys.stdin.readline().rstrip("\r\n") if confirm else first
        _check_passphrase_pair(first, second)
        return first
    import getpass  # only when asked: it imports termios

    for attempt in range(1, PASSPHRASE_TRIES + 1):
        first = getpass.getpass("Passphrase: ")
        second = getpass.getpass("Repeat passphrase: ") if confirm else first
        if first == second or attempt == PASSPHRASE_TRIES:
            break
        if first:
            stderr_line("graphkit: the passphrases do not match: try again")
        else:
            break
    _check_passphrase_pair(first, second, tries=PASSPHRASE_TRIES)
    return first


def _check_passphrase_pair(first: str, second: str, tries: int = 1) -> None:
    if not first:
        raise InputError("the passphrase is empty", "type a passphrase, or leave out the option")
    if first != second:
        what = f" ({tries} tries)" if tries > 1 else ""
        raise InputError(f"the passphrases do not match{what}", "run the command again")


def emit_json(data: Any) -> None:
    emit(data, "json")


# ----------------------------------------------------------------- -o/--output

# What every data-printing command but query offers (query adds jsonl and csv).
DATA_FORMATS = ("table", "json", "yaml", "tsv")

OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="table (the default: for people), json, yaml or tsv. --json is -o json.",
        show_default=False,
    ),
]


def output_format(output: str | None, as_json: bool = False) -> str:
    """The format from ``-o`` and its alias ``--json``; a usage error for anything else."""
    fmt = (output or ("json" if as_json else "table")).lower()
    if as_json and fmt != "json":
        raise UsageError(f"--json and -o {output} disagree", "give one of them")
    if fmt not in DATA_FORMATS:
        raise UsageError(
            f"--output {output!r} is not offered here", f"use one of {', '.join(DATA_FORMATS)}"
        )
    return fmt


def emit(data: Any, fmt: str) -> None:
    """Write ``data`` on stdout as ``fmt`` (json coloured on a terminal, unless NO_COLOR)."""
    from graphkit import output

    output.write_object(data, fmt if fmt != "table" else "json", sys.stdout)
