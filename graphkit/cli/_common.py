"""Shared pieces of the command line: state, consoles, passphrases, -o/--output.

Error reporting lives in :mod:`graphkit.cli._report` (importable without Typer) and is
re-exported here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from graphkit.cli._connection import PassphraseFileOpt
from graphkit.cli._options import ForceOpt
from graphkit.cli._report import (
    PASSPHRASE_ENV,
    error_line,
    install_log_handler,
    report_exception,
    say,
    silence_stdout,
    stderr_line,
    warn,
)
from graphkit.cli._state import STATE, interrupted
from graphkit.errors import InputError, UsageError

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


# ----------------------------------------------------------------- passphrases

PromptPassphraseOpt = Annotated[
    bool,
    typer.Option("--prompt-passphrase", help="Ask for the passphrase (hidden input)."),
]


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
