"""How a command line ends: one line per error, and the exit status it maps to.

Importable without Typer (the direct path, :mod:`graphkit.cli._direct`, runs a plain
command line without it): :func:`conclude` runs a command and is the one place where an
exception becomes a ``graphkit: error: ...`` line and an exit status, for the root
group (:class:`graphkit.cli._app.GraphkitGroup`) and the direct path alike.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from graphkit.cli._state import STATE, interrupted
from graphkit.errors import ExitCode, GraphkitError

__all__ = [
    "PASSPHRASE_ENV",
    "conclude",
    "error_line",
    "install_log_handler",
    "report_exception",
    "say",
    "silence_stdout",
    "split_debug",
    "stderr_line",
    "warn",
]

PASSPHRASE_ENV = "GRAPHKIT_KEY_PASSPHRASE"  # nosec B105  # the name of a variable, not its value


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it was there (anywhere before ``--``)."""
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    kept = [arg for arg in head if arg != "--debug"]
    return kept + tail, len(kept) != len(head)


def conclude(
    call: Callable[[], int],
    *,
    debug: bool,
    translate: Callable[[Exception], int | None] | None = None,
) -> NoReturn:
    """Run ``call`` (returning an exit status) and exit with its status, or with the one
    its exception maps to, after printing that one line (the traceback with --debug).

    Args:
        call: the command (parsing included, for the root group).
        debug: --debug was given.
        translate: a caller's own mapping, tried first (None: not its exception).
    """
    # Per run (tests run many in one process): from this command line only.
    STATE.debug = debug
    STATE.interrupted_shown = False
    try:
        code = call()
    except KeyboardInterrupt:
        if STATE.debug:
            raise
        code = int(ExitCode.INTERRUPTED)
    except Exception as exc:
        if STATE.debug:
            # The traceback, then the usual line and status: a script run with
            # --debug still tells exit 10 (a POST that may have been applied) from 1.
            import traceback

            traceback.print_exc()
        mapped = translate(exc) if translate is not None else None
        code = mapped if mapped is not None else report_exception(exc)
    if code == ExitCode.INTERRUPTED:
        # Typer turns an interrupt while parsing into a silent exit 130: say it.
        interrupted()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    except (OSError, ValueError, AttributeError):
        pass
    sys.exit(code)


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


# Errors of writing output (not of reading input): no space, over quota, too big, I/O.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


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
    if isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS:
        # Files graphkit writes report their own errors: this is stdout (`> /dev/full`,
        # a full disk, a quota). The OS's words only: no path, nothing of the data.
        error_line(
            f"the output could not be written: {os.strerror(exc.errno or 0)}: "
            "free some space, or send the output elsewhere"
        )
        return int(ExitCode.ERROR)
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
