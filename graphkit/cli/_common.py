"""Shared pieces of the command line: state, consoles, passphrases, error reporting."""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

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
    if isinstance(exc, BrokenPipeError):
        return int(ExitCode.ERROR)
    # Unexpected: one line, the type only (its text might hold secrets), and how to see more.
    error_line(
        f"unexpected {type(exc).__name__}; rerun with --debug for the traceback "
        "and report it if it persists"
    )
    return int(ExitCode.ERROR)


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
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace an existing output file.")
]


def read_passphrase(
    passphrase_file: Path | None, prompt: bool, *, confirm: bool = False
) -> bytes | None:
    """The passphrase from a file, the environment, or a hidden prompt (in that order).

    A passphrase is never taken as a plain argument: it would show in ``ps``.
    """
    if passphrase_file is not None:
        from graphkit.files import read_bytes

        raw = read_bytes(passphrase_file, "passphrase file")
        first = raw.splitlines()[0] if raw.splitlines() else b""
        if not first:
            raise InputError(f"passphrase file {passphrase_file} is empty", "put it on line 1")
        return first
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode()
    if prompt:
        if not sys.stdin.isatty():
            # Piped input (scripts, tests): read lines; getpass would warn and echo.
            first = sys.stdin.readline().rstrip("\r\n")
            if confirm:
                second = sys.stdin.readline().rstrip("\r\n")
                if first != second:
                    raise InputError("the passphrases do not match", "try again")
        else:
            first = getpass.getpass("Passphrase: ")
            if confirm and getpass.getpass("Repeat passphrase: ") != first:
                raise InputError("the passphrases do not match", "try again")
        if not first:
            raise InputError("the passphrase is empty", "type a passphrase, or leave out the option")
        return first.encode()
    return None


def emit_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
